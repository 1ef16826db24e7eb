/* tlsdiag path test. Served over plain HTTP (the entry URL support sends) the
   page first tries HTTPS itself, so the browser's real ClientHello crosses
   the real path; if that hangs or fails, it asks the server (over plain HTTP,
   which gets through) what it saw from this address. Otherwise it transfers
   stepped sizes in both directions over HTTPS, where packets are full size,
   to find the size at which the path starts dropping traffic (MTU black
   holes). Either way the server's diagnosis is the one headline shown.
   Contract: docs/probes.md. Plain ES2017, no dependencies; the page's CSP
   allows only same-origin scripts, connections to this origin and its HTTPS
   port, and no inline styles, so everything is built with the DOM API and
   styled from style.css. Nothing from the server or the network is ever
   parsed as HTML. */
(function () {
  'use strict';

  var SVG_NS = 'http://www.w3.org/2000/svg';
  var RUN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  var MAX_STEPS = 64;             // per direction (contract)
  var RUN_BUDGET_MS = 120000;     // no new step starts after this much time
  // After a failure, larger steps are skipped: past a size limit they would
  // only time out too. And the other direction is not run after a failure:
  // the browser keeps one connection to us, and a stalled transfer in one
  // direction holds up everything behind it, so its results would say
  // nothing about the other direction.
  var FAILS_BEFORE_SKIP = 1;
  var probeBase = '';             // where transfers go; '' = this origin
  // How long the page's first HTTPS request may take before HTTPS counts as
  // failing from here (a stalled ClientHello or handshake never answers).
  var HTTPS_CHECK_MS = 6000;
  var CONFIG_TIMEOUT_MS = 15000;
  var RESULTS_TIMEOUT_MS = 20000;
  var DEFAULT_STEP_TIMEOUT_MS = 8000;
  var DIRS = ['down', 'up'];

  var root = document.getElementById('probe');
  if (!root) return;

  function part(name) { return root.querySelector('.probe-' + name); }
  var ui = {
    status: part('status'),
    again: part('again'),
    table: part('table'),
    tbody: part('table') ? part('table').querySelector('tbody') : null,
    chart: part('chart'),
    link: part('link'),
    curl: part('curl')
  };

  var running = false;

  // ---------- small helpers ----------

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) { if (node) while (node.firstChild) node.removeChild(node.firstChild); }

  function setStatus(text, isError) {
    if (!ui.status) return;
    ui.status.textContent = text;
    ui.status.classList.toggle('probe-error', !!isError);
  }

  function now() { return performance.now(); }

  function round1(x) { return Math.round(x * 10) / 10; }

  function sizeLabel(n) {
    if (n >= 1048576 && n % 1048576 === 0) return (n / 1048576) + 'M';
    if (n >= 16384 && n % 1024 === 0) return (n / 1024) + 'k';
    return String(n);
  }

  function groupDigits(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ','); }

  function msLabel(ms) { return ms < 10 ? ms.toFixed(1) : String(Math.round(ms)); }

  function runId() {
    // 16 characters of [A-Za-z0-9], unbiased (rejection sampling).
    var out = '';
    var buf = new Uint8Array(32);
    while (out.length < 16) {
      crypto.getRandomValues(buf);
      for (var i = 0; i < buf.length && out.length < 16; i++) {
        if (buf[i] < 248) out += RUN_ALPHABET[buf[i] % 62];
      }
    }
    return out;
  }

  function randomBytes(n) {
    var data = new Uint8Array(n);
    for (var off = 0; off < n; off += 65536) {
      crypto.getRandomValues(data.subarray(off, Math.min(n, off + 65536)));
    }
    return data;
  }

  // fetch with a deadline covering the whole exchange, body included: `use`
  // reads the response and runs under the same AbortController.
  function timedFetch(url, init, timeoutMs, use) {
    var ctrl = new AbortController();
    var timedOut = false;
    var timer = setTimeout(function () { timedOut = true; ctrl.abort(); }, timeoutMs);
    init = Object.assign({ cache: 'no-store', credentials: 'same-origin', signal: ctrl.signal }, init);
    return fetch(url, init)
      .then(use)
      .then(function (v) { clearTimeout(timer); return v; },
            function (err) {
              clearTimeout(timer);
              if (timedOut) { var t = new Error('timeout'); t.word = 'timeout'; throw t; }
              if (!err.word) err.word = 'network';
              throw err;
            });
  }

  function statusError(resp) {
    var e = new Error('status ' + resp.status);
    e.word = 'status ' + resp.status;
    // Drain or drop the body so the connection is not held open.
    if (resp.body && resp.body.cancel) resp.body.cancel().catch(function () {});
    return e;
  }

  // ---------- configuration ----------

  function validSizes(list, maxBytes) {
    if (!Array.isArray(list)) return [];
    var seen = {};
    var out = [];
    list.forEach(function (n) {
      if (typeof n === 'number' && isFinite(n) && n >= 0 && n === Math.floor(n) &&
          n <= maxBytes && !seen[n] && out.length < MAX_STEPS) {
        seen[n] = true;
        out.push(n);
      }
    });
    return out;
  }

  // Naming the run tells the server a run starts: it forgets what its
  // kernel learned about the path toward us, so this run's connections can
  // carry full-size packets again (docs/probes.md#what-our-kernel-remembers).
  function loadConfig(run) {
    var d0 = Date.now();
    var t0 = now();
    return timedFetch('/api/v1/probe/config?run=' + run, { headers: { 'Accept': 'application/json' } },
                      CONFIG_TIMEOUT_MS, function (resp) {
      if (!resp.ok) throw statusError(resp);
      return resp.json();
    }).then(function (cfg) {
      var rtt = now() - t0;
      if (!cfg || typeof cfg !== 'object') throw new Error('bad configuration');
      var maxBytes = (typeof cfg.max_bytes === 'number' && cfg.max_bytes > 0) ? cfg.max_bytes : 16777216;
      var stepTimeout = Number(cfg.step_timeout_ms);
      if (!(stepTimeout >= 1000 && stepTimeout <= 120000)) stepTimeout = DEFAULT_STEP_TIMEOUT_MS;
      var offset = null;
      if (typeof cfg.server_time_ms === 'number' && isFinite(cfg.server_time_ms)) {
        // Client clock at receipt minus the server clock at the estimated
        // moment it answered (half a round trip before receipt).
        offset = Math.round((d0 + rtt) - (cfg.server_time_ms + rtt / 2));
      }
      var steps = { down: validSizes(cfg.down, maxBytes), up: validSizes(cfg.up, maxBytes) };
      // The plain-HTTP page runs its transfers on this host's HTTPS port
      // (full-size packets); only an https origin is accepted.
      probeBase = (typeof cfg.probe_base === 'string' && /^https:\/\/[A-Za-z0-9.:\[\]-]+$/.test(cfg.probe_base))
        ? cfg.probe_base : '';
      if (!steps.down.length && !steps.up.length) throw new Error('the server sent no sizes to test');
      return { steps: steps, stepTimeout: stepTimeout, clockOffset: offset };
    }).catch(function (err) { err.phase = 'fetching the test configuration'; throw err; });
  }

  // ---------- one step ----------

  function runDown(run, n, timeoutMs) {
    return timedFetch(probeBase + '/probe/down/' + n + '?run=' + run, {}, timeoutMs, function (resp) {
      if (resp.status !== 200) throw statusError(resp);
      return resp.arrayBuffer().then(function (buf) {
        if (buf.byteLength !== n) {
          var e = new Error('size'); e.word = 'size ' + buf.byteLength + '/' + n; throw e;
        }
      });
    });
  }

  function runUp(run, n, timeoutMs) {
    var body = randomBytes(n);
    return timedFetch(probeBase + '/probe/up?run=' + run + '&size=' + n, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Accept': 'application/json' },
      body: body
    }, timeoutMs, function (resp) {
      if (resp.status !== 200) throw statusError(resp);
      return resp.json().then(function (j) {
        var got = j && typeof j.received === 'number' ? j.received : null;
        if (got !== n) {
          var e = new Error('size'); e.word = got === null ? 'bad answer' : 'size ' + got + '/' + n; throw e;
        }
      }, function () {
        var e = new Error('bad answer'); e.word = 'bad answer'; throw e;
      });
    });
  }

  function step(dir, run, n, timeoutMs) {
    var t0 = now();
    var p = dir === 'down' ? runDown(run, n, timeoutMs) : runUp(run, n, timeoutMs);
    return p.then(function () {
      return { bytes: n, ok: true, ms: round1(now() - t0), error: null };
    }, function (err) {
      return { bytes: n, ok: false, ms: round1(now() - t0), error: err.word || 'network' };
    });
  }

  // ---------- progress table ----------

  function buildTable(state) {
    if (!ui.tbody) return;
    clear(ui.tbody);
    state.rows.forEach(function (row) {
      var tr = el('tr');
      tr.appendChild(el('td', 'num', groupDigits(row.bytes) + ' B'));
      row.cells = {};
      DIRS.forEach(function (dir) {
        var td = el('td', 'probe-pending', row.has[dir] ? '…' : '–');
        row.cells[dir] = td;
        tr.appendChild(td);
      });
      row.cells.ms = el('td', 'num', '');
      tr.appendChild(row.cells.ms);
      ui.tbody.appendChild(tr);
    });
    if (ui.table) ui.table.hidden = false;
  }

  function updateRow(state, dir, res) {
    var row = state.byBytes[res.bytes];
    if (!row || !row.cells) return;
    row.res[dir] = res;
    var td = row.cells[dir];
    if (res.ok) {
      td.className = 'probe-ok';
      td.textContent = 'ok';
    } else if (res.error === 'skipped') {
      td.className = 'probe-skipped';
      td.textContent = 'skipped';
    } else {
      td.className = 'probe-fail';
      td.textContent = '✕ ' + res.error;
    }
    var parts = DIRS.map(function (d) {
      var r = row.res[d];
      if (!r) return row.has[d] ? '…' : '–';
      return r.error === 'skipped' ? '–' : msLabel(r.ms);
    });
    row.cells.ms.textContent = parts.join(' / ');
  }

  function markRunning(state, dir, n) {
    var row = state.byBytes[n];
    if (row && row.cells) {
      row.cells[dir].className = 'probe-active';
      row.cells[dir].textContent = 'testing…';
    }
  }

  // ---------- chart ----------

  var CH = { left: 44, top: 12, height: 140, slot: 34, bar: 12, bottom: 34, right: 10 };

  function chartY(ms, timeoutMs) {
    // log scale from 1 ms to the step timeout
    var top = Math.log(1 + timeoutMs);
    var v = Math.log(1 + Math.max(0, Math.min(ms, timeoutMs))) / top;
    return Math.max(2, v * CH.height);
  }

  function buildChart(state) {
    if (!ui.chart) return;
    clear(ui.chart);
    var n = state.rows.length;
    var width = CH.left + n * CH.slot + CH.right;
    var height = CH.top + CH.height + CH.bottom;
    var s = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, width: width, height: height,
                         role: 'img', 'class': 'probe-svg' });
    s.appendChild(svg('title', {}, 'Transfer time per size (log scale); red ✕ = failed'));
    var base = CH.top + CH.height;
    // grid lines
    [1, 10, 100, 1000, 10000].forEach(function (ms) {
      if (ms > state.stepTimeout) return;
      var y = base - chartY(ms, state.stepTimeout);
      s.appendChild(svg('line', { x1: CH.left, x2: width - CH.right, y1: y, y2: y, 'class': 'probe-grid' }));
      s.appendChild(svg('text', { x: CH.left - 4, y: y + 3, 'class': 'probe-axis', 'text-anchor': 'end' },
                        ms >= 1000 ? (ms / 1000) + ' s' : ms + ' ms'));
    });
    s.appendChild(svg('line', { x1: CH.left, x2: width - CH.right, y1: base, y2: base, 'class': 'probe-base' }));
    state.bars = {};
    state.rows.forEach(function (row, i) {
      var x0 = CH.left + i * CH.slot + (CH.slot - 2 * CH.bar - 2) / 2;
      DIRS.forEach(function (dir, j) {
        var g = svg('g', { 'class': 'probe-bar probe-' + dir });
        state.bars[dir + ':' + row.bytes] = { g: g, x: x0 + j * (CH.bar + 2) };
        s.appendChild(g);
      });
      s.appendChild(svg('text', { x: CH.left + i * CH.slot + CH.slot / 2, y: base + 14,
                                  'class': 'probe-axis', 'text-anchor': 'middle' }, sizeLabel(row.bytes)));
    });
    // legend
    var ly = height - 6;
    s.appendChild(svg('rect', { x: CH.left, y: ly - 8, width: 10, height: 8, 'class': 'probe-down' }));
    s.appendChild(svg('text', { x: CH.left + 14, y: ly, 'class': 'probe-axis' }, 'down'));
    s.appendChild(svg('rect', { x: CH.left + 54, y: ly - 8, width: 10, height: 8, 'class': 'probe-up' }));
    s.appendChild(svg('text', { x: CH.left + 68, y: ly, 'class': 'probe-axis' }, 'up'));
    s.appendChild(svg('rect', { x: CH.left + 96, y: ly - 8, width: 10, height: 8, 'class': 'probe-failed' }));
    s.appendChild(svg('text', { x: CH.left + 110, y: ly, 'class': 'probe-axis' }, 'failed'));
    ui.chart.appendChild(s);
    ui.chart.hidden = false;
  }

  function drawBar(state, dir, res) {
    var b = state.bars && state.bars[dir + ':' + res.bytes];
    if (!b) return;
    clear(b.g);
    if (res.error === 'skipped') return;
    var base = CH.top + CH.height;
    var h = res.ok ? chartY(res.ms, state.stepTimeout) : CH.height;
    var rect = svg('rect', { x: b.x, y: base - h, width: CH.bar, height: h,
                             'class': res.ok ? 'probe-' + dir : 'probe-failed' });
    rect.appendChild(svg('title', {}, dir + ' ' + groupDigits(res.bytes) + ' B: ' +
                         (res.ok ? msLabel(res.ms) + ' ms' : 'failed (' + res.error + ')')));
    b.g.appendChild(rect);
    if (!res.ok) {
      b.g.appendChild(svg('text', { x: b.x + CH.bar / 2, y: base - h + 11, 'class': 'probe-x',
                                    'text-anchor': 'middle' }, '✕'));
    }
  }

  // ---------- results ----------

  function renderFinding(f) {
    var sev = ['info', 'warning', 'error'].indexOf(f.severity) >= 0 ? f.severity : 'info';
    var art = el('article', 'finding ' + sev);
    if (typeof f.id === 'string') art.id = f.id;
    var h = el('h3');
    h.appendChild(el('span', 'sev', sev));
    h.appendChild(document.createTextNode(' ' + (f.title || f.id || '')));
    art.appendChild(h);
    if (f.explanation) art.appendChild(el('p', null, f.explanation));
    if (Array.isArray(f.evidence) && f.evidence.length) {
      var dl = el('dl', 'evidence');
      f.evidence.forEach(function (e) {
        if (!e) return;
        dl.appendChild(el('dt', null, e.label));
        dl.appendChild(el('dd', null, e.value));
      });
      art.appendChild(dl);
    }
    if (Array.isArray(f.fix) && f.fix.length) {
      var fix = el('div', 'fix');
      fix.appendChild(el('strong', null, 'What to do'));
      var ul = el('ul');
      f.fix.forEach(function (stepText) {
        var li = el('li');
        li.appendChild(el('code', null, stepText));
        ul.appendChild(li);
      });
      fix.appendChild(ul);
      art.appendChild(fix);
    }
    if (f.id) art.appendChild(el('p', 'fid', f.id));
    return art;
  }

  function safeUrl(u) {
    if (typeof u !== 'string' || !u) return null;
    try {
      var url = new URL(u, location.href);
      return (url.protocol === 'http:' || url.protocol === 'https:') ? url.href : null;
    } catch (e) { return null; }
  }

  function copyFallback(node, note) {
    var sel = window.getSelection();
    var range = document.createRange();
    range.selectNodeContents(node);
    sel.removeAllRanges();
    sel.addRange(range);
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    note.textContent = ok ? 'Copied.' : 'Selected: press Ctrl+C (⌘C) to copy.';
  }

  // The server's packets of the run, kept with the report: one click to
  // Wireshark.
  function renderPackets(packets) {
    if (!ui.link || !packets) return;
    var href = packets.path ? safeUrl(packets.path) : null;
    var line = el('span', 'probe-packets', '');
    if (href) {
      line.appendChild(document.createTextNode(' The server\'s packets of this run: '));
      var a = el('a', null, 'packets.pcapng');
      a.href = href;
      a.setAttribute('download', '');
      line.appendChild(a);
      line.appendChild(document.createTextNode(' (open in Wireshark).'));
    } else if (packets.note) {
      line.appendChild(document.createTextNode(' No packets: ' + packets.note + '.'));
    }
    ui.link.appendChild(line);
    ui.link.hidden = false;
  }

  function renderLink(url) {
    if (!ui.link) return;
    clear(ui.link);
    var href = safeUrl(url);
    if (!href) { ui.link.hidden = true; return; }
    ui.link.appendChild(el('span', null, 'Link to this result: '));
    var a = el('a', 'probe-url', href);
    a.href = href;
    a.rel = 'noreferrer';
    ui.link.appendChild(a);
    ui.link.appendChild(document.createTextNode(' '));
    var btn = el('button', 'probe-copy', 'Copy link');
    btn.type = 'button';
    var note = el('span', 'probe-note', '');
    btn.addEventListener('click', function () {
      if (navigator.clipboard && navigator.clipboard.writeText && window.isSecureContext) {
        navigator.clipboard.writeText(href).then(function () { note.textContent = 'Copied.'; },
                                                 function () { copyFallback(a, note); });
      } else {
        copyFallback(a, note);
      }
    });
    ui.link.appendChild(btn);
    ui.link.appendChild(document.createTextNode(' '));
    ui.link.appendChild(note);
    ui.link.hidden = false;
  }

  // The run's diagnosis replaces what the page showed before the run: one
  // headline (showHeadline) and one list of findings, at the top.
  function renderAnswer(ans) {
    var verdict = (ans && typeof ans.verdict === 'string' && ans.verdict) ? ans.verdict : 'No verdict.';
    var section = document.getElementById('findings');
    var list = section ? section.querySelector('.findings-list') : null;
    if (list) {
      clear(list);
      (Array.isArray(ans.findings) ? ans.findings : []).forEach(function (f) {
        if (f && typeof f === 'object') list.appendChild(renderFinding(f));
      });
      section.hidden = !list.firstChild;
    }
    renderLink(ans.report_url);
    renderPackets(ans.server_packets);
    return verdict;
  }

  // Support's case label from the page URL (?case=ACME-1234), if it is one the
  // server accepts; anything else is left out rather than failing the run.
  function caseLabel() {
    var match = /[?&]case=([^&#]*)/.exec(location.search);
    if (!match) return null;
    var label;
    try { label = decodeURIComponent(match[1]); } catch (e) { return null; }
    return /^[A-Za-z0-9._:-]{1,64}$/.test(label) ? label : null;
  }

  function postResults(state) {
    var body = {
      run: state.run,
      agent: 'browser',
      client_time_ms: Date.now(),
      down: state.results.down.filter(function (r) { return r.error !== 'skipped'; }),
      up: state.results.up.filter(function (r) { return r.error !== 'skipped'; })
    };
    if (state.clockOffset !== null) body.clock_offset_ms = state.clockOffset;
    // How long since the run began, by this page's own clock: the server
    // places the run's HTTPS tries on its clock from it.
    body.run_ms = Math.max(0, Math.round(now() - state.t0));
    if (state.https && state.https.tries && state.https.tries.length) body.https = state.https.tries;
    // HTTPS failed from this browser: the server's own view decides.
    if (state.https && !state.https.ok) body.tls_check = { verified: false, error: state.https.error };
    var label = caseLabel();
    if (label) body.label = label;
    return timedFetch('/api/v1/probe/results', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }, RESULTS_TIMEOUT_MS, function (resp) {
      if (!resp.ok) {
        // Show the server's own explanation if it sent one.
        return resp.text().then(function (t) {
          var msg = 'status ' + resp.status;
          try { var j = JSON.parse(t); if (j && j.error) msg += ': ' + (j.error.message || j.error); } catch (e) { /* not JSON */ }
          var err = new Error(msg); err.word = msg; throw err;
        });
      }
      return resp.json();
    }).catch(function (err) { err.phase = 'sending the results'; throw err; });
  }

  // ---------- the run ----------

  function resetOutput() {
    if (ui.link) { clear(ui.link); ui.link.hidden = true; }
    root.removeAttribute('data-verdict');
    root.removeAttribute('data-run');
  }

  function fail(msg) {
    root.setAttribute('data-state', 'error');
    setStatus('The path test could not finish: ' + msg + ' Try “Run again”, or the curl command below.', true);
  }

  // One HTTPS request naming the run, timed from the run's start: the server
  // ties the connection that carried it to this run.
  function httpsTry(state) {
    var t0 = now();
    var started = round1(t0 - state.t0);
    return timedFetch(probeBase + '/api/v1/connection?run=' + state.run,
                      { headers: { 'Accept': 'application/json' } },
                      HTTPS_CHECK_MS, function (resp) {
      if (!resp.ok) throw statusError(resp);
      return resp.json();
    }).then(function (report) {
      return { ok: true, error: null, started_ms: started, ms: round1(now() - t0),
               summary: report && typeof report.summary === 'string' ? report.summary : null };
    }, function (err) {
      return { ok: false, error: err.word === 'timeout' ? 'timeout' : 'failed',
               started_ms: started, ms: round1(now() - t0) };
    });
  }

  // The page's own HTTPS request, when it came over plain HTTP: the browser's
  // real ClientHello on the real path. A try that failed fast (the browser
  // gave up on the connection: a network change, a reset) is made once more,
  // on a new connection; both tries go to the server as evidence.
  // Resolves { ok, summary, error, tries }.
  function httpsCheck(state) {
    if (!probeBase) return Promise.resolve({ ok: true, summary: null, tries: [] });
    return httpsTry(state).then(function (first) {
      if (first.ok || first.error === 'timeout') return [first];
      setStatus('HTTPS from your browser failed at once; trying again on a new connection…');
      return httpsTry(state).then(function (second) { return [first, second]; });
    }).then(function (tries) {
      var last = tries[tries.length - 1];
      return { ok: last.ok, summary: last.summary || null, error: last.error,
               tries: tries.map(function (t) {
                 return { ok: t.ok, error: t.error, started_ms: t.started_ms, ms: t.ms };
               }) };
    });
  }

  // One direction's ladder: steps in order, larger ones skipped after
  // failures in a row or once the time budget is spent.
  function runDirection(state, cfg, dir, started) {
    var failsInARow = 0;
    var sizes = cfg.steps[dir];
    function next(i) {
      if (i >= sizes.length) return Promise.resolve();
      var n = sizes[i];
      if (now() - started > RUN_BUDGET_MS || failsInARow >= FAILS_BEFORE_SKIP) {
        var skipped = { bytes: n, ok: false, ms: 0, error: 'skipped' };
        state.results[dir].push(skipped);
        updateRow(state, dir, skipped);
        return next(i + 1);
      }
      markRunning(state, dir, n);
      // Large steps get time for slow links on top of the stall bound.
      var timeout = state.stepTimeout + Math.floor(n / 131072) * 1000;
      return step(dir, state.run, n, timeout).then(function (res) {
        failsInARow = res.ok ? 0 : failsInARow + 1;
        state.results[dir].push(res);
        updateRow(state, dir, res);
        drawBar(state, dir, res);
        return next(i + 1);
      });
    }
    return next(0);
  }

  function showHeadline(ans) {
    var box = document.getElementById('headline');
    if (!box || !ans || typeof ans.verdict !== 'string') return;
    var h1 = box.querySelector('h1');
    if (h1) h1.textContent = ans.verdict;
    var status = ['problem', 'inconclusive', 'clear'].indexOf(ans.status) >= 0 ? ans.status : 'inconclusive';
    box.setAttribute('data-status', status);
    box.className = 'headline ' + (status === 'problem' ? 'bad' : status === 'clear' ? 'good' : 'warn');
  }

  function start() {
    if (running) return;
    running = true;
    if (ui.again) { ui.again.disabled = true; ui.again.hidden = false; ui.again.textContent = 'Run again'; }
    resetOutput();
    root.setAttribute('data-state', 'running');
    setStatus('Fetching the test configuration…');

    var state = { run: runId(), t0: now(), results: { down: [], up: [] }, rows: [], byBytes: {} };
    root.setAttribute('data-run', state.run);

    loadConfig(state.run).then(function (cfg) {
      state.stepTimeout = cfg.stepTimeout;
      state.clockOffset = cfg.clockOffset;
      setStatus('Trying HTTPS from your browser…');
      return httpsCheck(state).then(function (https) {
        state.https = https;
        if (!https.ok) {
          root.setAttribute('data-https', 'failed');
          setStatus('HTTPS from your browser failed (' + https.error + '); asking the server what it saw from your address…');
          return null;
        }
        root.setAttribute('data-https', 'ok');
        var sizes = {};
        DIRS.forEach(function (dir) {
          cfg.steps[dir].forEach(function (n) {
            if (!sizes[n]) sizes[n] = { bytes: n, has: {}, res: {} };
            sizes[n].has[dir] = true;
          });
        });
        state.rows = Object.keys(sizes).map(function (k) { return sizes[k]; })
          .sort(function (a, b) { return a.bytes - b.bytes; });
        state.rows.forEach(function (r) { state.byBytes[r.bytes] = r; });
        buildTable(state);
        buildChart(state);
        setStatus('Run ' + state.run + ': HTTPS works' + (https.summary ? ' (' + https.summary + ')' : '') +
                  '; transferring stepped sizes both ways over HTTPS…');
        var started = now();
        return runDirection(state, cfg, 'down', started).then(function () {
          var downFailed = state.results.down.some(function (r) { return !r.ok && r.error !== 'skipped'; });
          if (!downFailed) return runDirection(state, cfg, 'up', started);
          cfg.steps.up.forEach(function (n) {
            var skipped = { bytes: n, ok: false, ms: 0, error: 'skipped' };
            state.results.up.push(skipped);
            updateRow(state, 'up', skipped);
          });
        });
      });
    }).then(function () {
      setStatus('Run ' + state.run + ': sending results…');
      return postResults(state);
    }).then(function (ans) {
      if (!ans || typeof ans !== 'object') throw new Error('the server sent an empty answer');
      var verdict = renderAnswer(ans);
      showHeadline(ans);
      var all = state.results.down.concat(state.results.up);
      var failed = all.filter(function (r) { return !r.ok && r.error !== 'skipped'; }).length;
      var skipped = all.filter(function (r) { return r.error === 'skipped'; }).length;
      var others = Array.isArray(ans.other_clients) ? ans.other_clients.length : 0;
      setStatus('Run ' + state.run + ' finished' +
                (state.https && !state.https.ok ? ': HTTPS failed from your browser, so no transfers ran.' :
                 ': ' + failed + ' failed step' + (failed === 1 ? '' : 's') +
                 (skipped ? ', ' + skipped + ' larger step' + (skipped === 1 ? '' : 's') + ' skipped' : '') + '.') +
                (others ? ' ' + others + ' connection' + (others === 1 ? '' : 's') +
                          ' from other clients at your address (not this browser) did not count.' : ''));
      root.setAttribute('data-others', String(others));
      root.setAttribute('data-verdict', verdict);
      root.setAttribute('data-status', typeof ans.status === 'string' ? ans.status : '');
      root.setAttribute('data-state', 'done');
    }).catch(function (err) {
      var msg = (err && (err.word === 'timeout' ? 'the server did not answer in time' :
                         err.word === 'network' ? 'network error (' + (err.message || 'fetch failed') + ')' :
                         err.word || err.message)) || 'unknown error';
      fail(msg + (err && err.phase ? ' (while ' + err.phase + ')' : '') + '.');
    }).then(function () {
      running = false;
      if (ui.again) ui.again.disabled = false;
    });
  }

  if (ui.curl) {
    var label = caseLabel();
    ui.curl.textContent = 'curl -s ' + location.origin + '/check.sh' +
      (label ? '?case=' + label : '') + ' | sh';
  }
  if (ui.again) ui.again.addEventListener('click', start);
  if (root.getAttribute('data-autostart') === 'off') {
    if (ui.again) { ui.again.textContent = 'Run the path test'; ui.again.hidden = false; }
  } else {
    start();
  }
})();
