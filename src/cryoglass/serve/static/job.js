// Job page: poll the job record and reload the page when its status changes.
(function () {
  "use strict";
  const script = document.currentScript;
  const id = script.dataset.job;
  const shown = script.dataset.status;
  function poll() {
    fetch("/api/jobs/" + id, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        if (job.status !== shown) { window.location.reload(); } else { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1000);
})();
