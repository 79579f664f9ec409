// Project form: one form for every project job kind, built from GET /api/kinds; file options
// offer the project's files and the outputs of earlier jobs (GET /api/project/files, /api/jobs).
(function () {
  "use strict";
  const select = document.getElementById("project-kind");
  const fields = document.getElementById("project-params");
  const summary = document.getElementById("project-summary");
  const errorBox = document.getElementById("project-error");
  const list = document.getElementById("project-files");
  let kinds = {};
  function get(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) { return r.json(); });
  }
  function build() {
    const kind = kinds[select.value];
    fields.textContent = "";
    summary.textContent = kind.summary + " (" + kind.command + ", folder " + kind.folder + "/)";
    for (const param of kind.params) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.name = param.name;
      input.dataset.type = param.type;
      if (param.type === "bool") {
        input.type = "checkbox";
        label.append(input, " " + param.name);
      } else {
        input.type = "text";
        input.placeholder = param.required ? "required" : "default";
        input.required = param.required;
        if (param.type === "path") input.setAttribute("list", "project-files");
        label.append(param.name + " ", input);
      }
      label.title = param.help;
      label.className = "param";
      fields.append(label);
    }
  }
  function refreshFiles() {
    Promise.all([get("/api/project/files"), get("/api/jobs")]).then(function (answers) {
      const names = new Set(answers[0].files);
      for (const job of answers[1]) {
        if (!job.out_dir || job.status === "failed" || job.status === "cancelled") continue;
        names.add(job.out_dir);
        for (const out of (kinds[job.kind] || { outputs: [] }).outputs) names.add(job.out_dir + "/" + out);
      }
      list.textContent = "";
      for (const name of Array.from(names).sort()) {
        const option = document.createElement("option");
        option.value = name;
        list.append(option);
      }
    });
  }
  get("/api/kinds").then(function (answer) {
    for (const kind of answer.project) {
      kinds[kind.kind] = kind;
      const option = document.createElement("option");
      option.value = option.textContent = kind.kind;
      select.append(option);
    }
    build();
    refreshFiles();
  });
  select.addEventListener("change", build);
  document.getElementById("project-submit").addEventListener("submit", function (event) {
    event.preventDefault();
    const params = {};
    for (const input of fields.querySelectorAll("input")) {
      if (input.dataset.type === "bool") {
        if (input.checked) params[input.name] = true;
      } else if (input.value.trim() !== "") {
        params[input.name] = input.value.trim();
      }
    }
    fetch("/api/project/jobs", {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: select.value, params: params }),
    })
      .then(function (r) { return r.json().then(function (body) { return [r, body]; }); })
      .then(function (answer) {
        if (answer[0].ok) {
          window.location.href = answer[1].url;
        } else {
          errorBox.hidden = false;
          const detail = answer[1].detail;
          errorBox.textContent = "Rejected: " + (typeof detail === "string" ? detail : JSON.stringify(detail));
        }
      });
  });
})();
