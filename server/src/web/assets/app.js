// gridlink command centre: a little progressive enhancement; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // A form is sent once: a second click while the first is on its way would record the
  // action twice.
  for (const form of document.querySelectorAll("form.action, form.filters")) {
    form.addEventListener("submit", () => {
      for (const button of form.querySelectorAll("button[type=submit]")) {
        button.disabled = true;
      }
    });
  }
  // After an action the page opens at the timeline: mark its newest entry.
  if (location.hash === "#timeline") {
    const entries = document.querySelectorAll("ol.timeline > li");
    const last = entries[entries.length - 1];
    if (last) {
      last.classList.add("latest");
      last.scrollIntoView({ block: "center" });
    }
  }
  // Map: the grid or case under the pointer is named beside the legend.
  const map = document.getElementById("district-map");
  const hovered = document.querySelector("figure.district-map figcaption .hovered");
  if (map && hovered) {
    map.addEventListener("mouseover", (e) => {
      const title = e.target.querySelector && e.target.querySelector("title");
      hovered.textContent = title ? title.textContent + " · " : "";
    });
    map.addEventListener("mouseleave", () => { hovered.textContent = ""; });
  }
});
