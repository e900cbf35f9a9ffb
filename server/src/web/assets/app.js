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
  // Map: the grid under the pointer is named in the caption.
  const map = document.getElementById("district-map");
  const caption = document.querySelector("figure.district-map figcaption");
  if (map && caption) {
    const base = caption.textContent;
    map.addEventListener("mouseover", (e) => {
      const title = e.target.querySelector && e.target.querySelector("title");
      caption.textContent = title ? title.textContent : base;
    });
    map.addEventListener("mouseleave", () => { caption.textContent = base; });
  }
});
