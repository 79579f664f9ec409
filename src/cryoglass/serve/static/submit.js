// Submit form: show only the options of the chosen job kind.
(function () {
  "use strict";
  const kind = document.getElementById("kind");
  function sync() {
    for (const el of document.querySelectorAll(".only-3dfsc, .only-postprocess")) {
      const wanted = el.classList.contains("only-" + kind.value);
      el.style.display = wanted ? "" : "none";
      for (const input of el.querySelectorAll("input")) input.disabled = !wanted;
    }
  }
  kind.addEventListener("change", sync);
  sync();
})();
