// Conveniences only: every page works the same without this file.
// The group page's filter applies as soon as a list changes, without pressing Show.
"use strict";
document.querySelectorAll("form.filters select").forEach(function (select) {
  select.addEventListener("change", function () {
    select.form.submit();
  });
});
