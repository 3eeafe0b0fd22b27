// The warden console's only script: a run's live table. The server renders (and escapes) the
// table; this swaps it in on each `state` event and stops at `done`. No inline script anywhere:
// the Content-Security-Policy forbids it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const live = document.querySelector("[data-live]");
  if (!live) {
    return;
  }
  const source = new EventSource(live.dataset.live);
  source.addEventListener("state", (e) => {
    live.innerHTML = e.data;
  });
  source.addEventListener("done", () => source.close());
});
