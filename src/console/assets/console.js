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
// The template box's live preview: the template, the chosen example and the privacy rules go
// to the server as the user types (debounced); the answer is the body that would be sent, or
// what is wrong and where.
(function () {
  function start() {
    var area = document.getElementById('template');
    var out = document.getElementById('template-preview');
    if (!area || !out) { return; }
    var form = area.form;
    var timer = null;
    var latest = 0;
    function run() {
      var body = new URLSearchParams();
      body.append('csrf', form.elements.csrf.value);
      body.append('template', area.value);
      body.append('event_type', document.getElementById('preview_type').value);
      form.querySelectorAll('[name^="privacy_"]').forEach(function (el) {
        body.append(el.name, el.value);
      });
      var mine = ++latest;
      fetch(out.getAttribute('data-url'), {
        method: 'POST', body: body, credentials: 'same-origin',
        headers: { 'Accept': 'application/json' }
      }).then(function (r) { return r.json(); }).then(function (v) {
        if (mine !== latest) { return; }
        if (v.error) {
          out.textContent = v.error.message;
          out.className = 'preview failed';
        } else {
          out.textContent = JSON.stringify(v.payload, null, 2);
          out.className = 'preview';
        }
      }).catch(function () {
        if (mine === latest) { out.textContent = 'The preview could not be loaded.'; }
      });
    }
    function active() {
      var profile = document.getElementById('profile');
      return profile && profile.value === 'template';
    }
    function later() {
      clearTimeout(timer);
      if (active()) { timer = setTimeout(run, 250); }
    }
    area.addEventListener('input', later);
    form.addEventListener('change', function (e) {
      var name = e.target.name || e.target.id || '';
      if (name === 'preview_type' || name === 'profile' || name.indexOf('privacy_') === 0) { later(); }
    });
    if (active()) { run(); }
  }
  document.addEventListener('DOMContentLoaded', start);
})();
