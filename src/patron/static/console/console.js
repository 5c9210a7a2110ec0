// The console's own script: nothing runs inline (the pages' Content-Security-Policy forbids it).
// htmx (loaded before this) does the partial updates; this file only adds what htmx does not.
"use strict";

// A segment's count answers 400 with the problem's message for a bad rule: show it where the count goes.
document.addEventListener("htmx:beforeSwap", (event) => {
  if (event.detail.xhr.status === 400 && event.detail.target.id === "count") {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
