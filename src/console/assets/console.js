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
// Live calls: the stream integration's events (Server-Sent Events through the session), one row
// per call, newest first. The browser reconnects by itself with the last event's id, so the
// stream resumes where it stopped.
(function () {
  var KEEP = 50;
  function text(v) { return v === undefined || v === null ? '' : String(v); }
  function fields(p) {
    var d = p.data || {};
    return {
      call: text(p.call_id || p.callId),
      state: text(p.state || d.state || '').toLowerCase(),
      direction: text(p.direction || d.direction || '').toLowerCase(),
      local: text(p.local_number || (d.local && d.local.number) || (d.caller && d.caller.number)),
      remote: text(p.remote_number || (d.remote && d.remote.number) || (d.callee && d.callee.number))
    };
  }
  function start() {
    var table = document.getElementById('live-calls');
    var status = document.getElementById('live-status');
    if (!table || !status || !window.EventSource) { return; }
    var body = table.tBodies[0];
    var rows = {};
    function say(what, cls) { status.textContent = what; status.className = 'status ' + cls; }
    var source = new EventSource(table.getAttribute('data-src'));
    source.onopen = function () { say('catching up', 'pending'); };
    source.onerror = function () { say('reconnecting', 'pending'); };
    source.addEventListener('close', function (e) {
      var v = {};
      try { v = JSON.parse(e.data); } catch (err) { v = {}; }
      say('reconnecting (' + text(v.reason) + ')', 'pending');
    });
    source.onmessage = function (e) {
      var v;
      try { v = JSON.parse(e.data); } catch (err) { return; }
      if (v.live) { say('live', 'succeeded'); return; }
      if (!v.payload) { return; }
      var f = fields(v.payload);
      var key = f.call || v.event_id;
      var row = rows[key];
      if (!row) {
        row = body.insertRow(0);
        for (var k = 0; k < 6; k++) { row.insertCell(); }
        row.setAttribute('data-call', key);
        rows[key] = row;
        while (body.rows.length > KEEP) {
          var last = body.rows[body.rows.length - 1];
          delete rows[last.getAttribute('data-call')];
          body.deleteRow(body.rows.length - 1);
        }
      } else if (row !== body.rows[0]) {
        body.insertBefore(row, body.rows[0]);
      }
      var cells = [f.call, f.state || v.event_type, f.direction, f.local, f.remote, v.event_type];
      for (var c = 0; c < cells.length; c++) {
        if (cells[c] || c === 1 || c === 5) { row.cells[c].textContent = cells[c]; }
      }
      row.className = f.state === 'terminated' ? 'ended' : '';
      if (f.state) {
        var seen = row.getAttribute('data-states');
        row.setAttribute('data-states', seen ? seen + ' ' + f.state : f.state);
      }
    };
  }
  document.addEventListener('DOMContentLoaded', start);
})();
