// Explorer pages: re-request the server-rendered PNGs when a control changes.
// At most one request per image is in flight; the latest settings win.
(function () {
  "use strict";
  const form = document.getElementById("explorer");
  const images = Array.from(document.querySelectorAll("img[data-base]"));

  function query() {
    const params = new URLSearchParams();
    for (const el of form.elements) {
      if (!el.name) continue;
      let value = el.value;
      if (el.name === "lowpass_angstrom" && Number(value) > 0 && Number(value) < 4) value = "0";
      params.set(el.name, value);
    }
    return params.toString();
  }

  function refresh(img) {
    const url = img.dataset.base + "?" + query();
    if (img.dataset.loading === "1") { img.dataset.pending = url; return; }
    img.dataset.loading = "1";
    img.src = url;
  }

  for (const img of images) {
    const done = function () {
      img.dataset.loading = "0";
      const next = img.dataset.pending;
      if (next) { delete img.dataset.pending; img.dataset.loading = "1"; img.src = next; }
    };
    img.addEventListener("load", done);
    img.addEventListener("error", done);
  }

  function update() {
    for (const out of form.querySelectorAll("output")) {
      out.textContent = document.getElementById(String(out.htmlFor)).value;
    }
    images.forEach(refresh);
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
