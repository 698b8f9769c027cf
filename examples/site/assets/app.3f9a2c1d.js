// Content-hashed name: a changed file gets a new name on deploy.
document.addEventListener("DOMContentLoaded", function () {
  var el = document.getElementById("release");
  if (el) el.title = "served at " + new Date().toISOString();
});
