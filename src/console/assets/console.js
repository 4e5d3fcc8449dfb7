// callhook console: progressive enhancement only; every page works without it.
// Shows the batch settings only when batch mode is chosen, and the digits box only for `mask`.
(function () {
  function sync() {
    document.querySelectorAll('[data-show-when]').forEach(function (el) {
      var parts = el.getAttribute('data-show-when').split('=');
      var input = document.getElementById(parts[0]);
      if (input) { el.hidden = input.value !== parts[1]; }
    });
  }
  document.addEventListener('change', sync);
  document.addEventListener('DOMContentLoaded', sync);
})();
