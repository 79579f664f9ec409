// Job page: follow the job record (progress, message, log) without reloading; reload with the
// results when the job is over.  Cancel and Delete buttons call the JSON API.
(function () {
  "use strict";
  const script = document.currentScript;
  const id = script.dataset.job;
  const shown = script.dataset.status;
  const active = shown === "queued" || shown === "running";
  function text(elementId, value) {
    const el = document.getElementById(elementId);
    if (el) el.textContent = value;
  }
  function show(job) {
    const bar = document.getElementById("progress");
    if (bar && job.progress !== null && job.progress !== undefined) {
      bar.value = job.progress;
      text("percent", Math.round(100 * job.progress) + " %");
    }
    text("message", job.message || "");
    text("status", job.status);
    const log = document.getElementById("log");
    if (log && log.textContent !== job.log) {
      const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = job.log;
      if (atEnd) log.scrollTop = log.scrollHeight;
    }
  }
  function poll() {
    fetch("/api/jobs/" + id, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        show(job);
        const over = job.status !== "queued" && job.status !== "running";
        if (over && (job.status !== "cancelled" || job.finished_at)) {
          window.location.reload();
        } else {
          setTimeout(poll, 700);
        }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  function call(method, url) {
    return fetch(url, { method: method, credentials: "same-origin" }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error(body.detail || r.statusText);
        return body;
      });
    });
  }
  const cancel = document.getElementById("cancel");
  if (cancel) {
    cancel.addEventListener("click", function () {
      cancel.disabled = true;
      text("message", "cancelling…");
      call("POST", "/api/jobs/" + id + "/cancel").catch(function (e) { text("message", e.message); });
    });
  }
  const remove = document.getElementById("delete");
  if (remove) {
    remove.addEventListener("click", function () {
      if (!window.confirm("Delete job " + id + " and all its files?")) return;
      call("DELETE", "/api/jobs/" + id)
        .then(function () { window.location.href = "/"; })
        .catch(function (e) { window.alert(e.message); });
    });
  }
  if (active) setTimeout(poll, 500);
})();
