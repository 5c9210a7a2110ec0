// The console's own script: nothing runs inline (the pages' Content-Security-Policy forbids it).
// htmx (loaded before this) does the partial updates; this file only adds what htmx does not.
"use strict";
