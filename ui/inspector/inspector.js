// The virtio-ts inspector page: follows /api/events (Server-Sent Events, one state per
// interval), renders each device's status, features, queues and chains in flight, fetches a
// chain's descriptors on click (/api/chain), and plots requests and bytes per second on
// canvases. No library: it runs as served from the package.
/* global document, window, EventSource, fetch, URLSearchParams */

const $ = (sel, root = document) => root.querySelector(sel);

/** Escapes text for innerHTML (device names and error messages may hold anything). */
function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[u]}`;
}

function num(v) {
  return v === null || v === undefined ? 'unmapped' : String(v);
}

/** The chain whose descriptors are shown: { device, queue, id, detail, gone }. */
let selected = null;
let last = null;

function statusChips(d) {
  if (!d.status) return '<span class="muted">no front-end connected</span>';
  const chips = d.status.bits
    .map((b) => {
      const bad = b.name === 'DEVICE_NEEDS_RESET' || b.name === 'FAILED' ? ' bad' : '';
      return `<span class="bit${b.set ? ' on' : ''}${bad}" data-status-bit="${esc(b.name)}">${esc(b.name)}</span>`;
    })
    .join('');
  return `<div class="chips" data-field="status" data-value="${d.status.value}">${chips}<span class="muted">0x${d.status.value.toString(16)}</span></div>`;
}

function featureTable(f, attr) {
  if (!f) return '';
  const rows = f.bits
    .map(
      (b) =>
        `<tr data-${attr}="${esc(b.name)}"><td>${b.bit}</td><td class="l mono">${esc(b.name)}</td>` +
        `<td data-field="offered">${b.offered ? '✓' : ''}</td><td data-field="negotiated">${b.negotiated ? '✓' : ''}</td></tr>`,
    )
    .join('');
  return `<table><tr><th>bit</th><th class="l">name</th><th>offered</th><th>negotiated</th></tr>${rows}</table>
    <div class="muted mono">offered ${esc(f.offered)} · negotiated ${esc(f.negotiated)}</div>`;
}

function positions(q) {
  const r = q.ring;
  const dev = q.device;
  if (!r || !dev) return { avail: '–', lastAvail: '–', used: '–', nextUsed: '–', pending: '–', wraps: '–' };
  if (r.layout === 'split') {
    const pending = r.availIdx === null ? 'unmapped' : String((r.availIdx - dev.nextAvail) & 0xffff);
    return { avail: num(r.availIdx), lastAvail: String(dev.nextAvail), used: num(r.usedIdx), nextUsed: String(dev.nextUsed), pending, wraps: '–' };
  }
  return {
    avail: '–',
    lastAvail: String(dev.nextAvail),
    used: '–',
    nextUsed: String(dev.nextUsed),
    pending: num(r.availableAhead),
    wraps: `avail ${dev.availWrap ? 1 : 0} · used ${dev.usedWrap ? 1 : 0}`,
  };
}

function queueRows(d) {
  return d.queues
    .map((q) => {
      const p = positions(q);
      const c = q.counters || {};
      const s = q.suppression;
      const state = q.broken ? `<span class="broken">broken</span>` : q.started ? (q.enabled ? 'running' : 'started, disabled') : 'stopped';
      return `<tr data-queue="${q.index}">
        <td>${q.index}</td><td class="l">${q.layout ?? '–'}</td><td data-field="size">${q.size}</td><td class="l" data-field="state">${state}</td>
        <td data-field="avail-idx">${p.avail}</td><td data-field="last-avail">${p.lastAvail}</td>
        <td data-field="used-idx">${p.used}</td><td data-field="next-used">${p.nextUsed}</td><td data-field="wraps">${p.wraps}</td>
        <td data-field="pending">${p.pending}</td><td data-field="in-flight">${c.inFlight ?? (q.device ? q.device.inFlight : '–')}</td>
        <td data-field="requests">${c.requests ?? 0}</td><td data-field="completed">${c.completed ?? 0}</td>
        <td data-field="bytes-read" data-value="${c.bytesRead ?? 0}">${bytes(c.bytesRead ?? 0)}</td>
        <td data-field="bytes-written" data-value="${c.bytesWritten ?? 0}">${bytes(c.bytesWritten ?? 0)}</td>
        <td data-field="errors">${c.errors ?? 0}</td><td data-field="kicks">${c.kicks ?? 0}</td><td data-field="calls">${c.calls ?? 0}</td>
        <td class="l" data-field="kick-suppression">${s ? esc(s.driverNotifications) : '–'}</td>
        <td class="l" data-field="call-suppression">${s ? esc(s.deviceNotifications) : '–'}</td>
      </tr>`;
    })
    .join('');
}

function chainLists(d) {
  return d.queues
    .filter((q) => q.chains && q.chains.length > 0)
    .map((q) => {
      const buttons = q.chains
        .map((c) => {
          const on = selected && selected.device === d.name && selected.queue === q.index && selected.id === c.id;
          return `<button class="chain${on ? ' selected' : ''}" data-device="${esc(d.name)}" data-queue="${q.index}" data-chain-id="${c.id}" title="${c.readableBytes} B readable, ${c.writableBytes} B writable">#${c.id} · ${c.segments} seg · ${bytes(c.readableBytes + c.writableBytes)}</button>`;
        })
        .join('');
      return `<div>queue ${q.index}: <div class="chains" data-chains-queue="${q.index}">${buttons}</div></div>`;
    })
    .join('');
}

function descRows(list, depth) {
  return list
    .map((x) => {
      const row = `<tr class="desc" data-desc-index="${x.index}"><td class="l">${'&nbsp;&nbsp;'.repeat(depth)}${x.index}</td>
        <td class="mono" data-field="desc-addr">${x.addr ?? 'unmapped'}</td><td data-field="desc-len">${x.len ?? 'unmapped'}</td>
        <td class="l mono" data-field="desc-flags">${x.flags === null ? 'unmapped' : esc(x.flagNames.join('|') || '0')}</td><td>${x.next ?? ''}</td></tr>`;
      return row + (x.indirect ? descRows(x.indirect, depth + 1) : '');
    })
    .join('');
}

function chainDetail(d) {
  if (!selected || selected.device !== d.name) return '';
  const head = `chain #${selected.id} on queue ${selected.queue}`;
  if (!selected.detail) return `<div class="chain-detail" data-field="chain-detail">${head}: loading…</div>`;
  if (selected.detail.error) return `<div class="chain-detail" data-field="chain-detail">${head}: ${esc(selected.detail.error)}</div>`;
  const x = selected.detail;
  return `<div class="chain-detail" data-field="chain-detail" data-chain-id="${x.id}">
    <b>${head}</b> <span class="muted">(${esc(x.source)}${selected.gone ? '; completed since' : ''})</span>
    ${x.problem ? `<div class="broken">${esc(x.problem)}</div>` : ''}
    <table><tr><th class="l">#</th><th>address</th><th>length</th><th class="l">flags</th><th>next</th></tr>${descRows(x.descriptors, 0)}</table></div>`;
}

function deviceSection(d) {
  const type = d.deviceType ? `${esc(d.deviceType)} (device id ${d.deviceId})` : '';
  const refusals = d.refusals && d.refusals.count > 0 ? `<div class="muted">vhost-user requests refused: ${d.refusals.count}; last: ${esc(d.refusals.last ?? '')}</div>` : '';
  return `<section class="device${d.connected ? '' : ' disconnected'}" data-device="${esc(d.name)}">
    <h2>${esc(d.name)} <span class="muted">${type}${d.active ? ' · active' : ''}</span></h2>
    ${statusChips(d)}
    ${d.needsReset ? `<div class="needs-reset" data-field="needs-reset">DEVICE_NEEDS_RESET: ${esc(d.needsReset)}</div>` : ''}
    ${refusals}
    <h3>Queues</h3>
    <div class="scroll"><table class="queues"><tr><th>#</th><th class="l">layout</th><th>size</th><th class="l">state</th>
      <th title="avail idx the driver published">avail idx</th><th title="the device's next avail position (last_avail)">last avail</th>
      <th title="used idx the device published">used idx</th><th title="the device's next used position">next used</th><th>wrap counters</th>
      <th title="available and not yet taken by the device">pending</th><th>in flight</th><th>requests</th><th>completed</th>
      <th>read</th><th>written</th><th>errors</th><th>kicks</th><th>calls</th>
      <th class="l">driver notifies device</th><th class="l">device notifies driver</th></tr>${queueRows(d)}</table></div>
    <h3>Chains in flight <span class="muted">(click one for its descriptors)</span></h3>
    ${chainLists(d) || '<div class="muted">none</div>'}
    ${chainDetail(d)}
    <div class="plots">
      <div><div class="legend"><span><i style="background:#2563eb"></i>requests/s</span></div><canvas data-plot="requests" data-device="${esc(d.name)}"></canvas></div>
      <div><div class="legend"><span><i style="background:#0f766e"></i>read bytes/s</span><span><i style="background:#d97706"></i>written bytes/s</span></div><canvas data-plot="bytes" data-device="${esc(d.name)}"></canvas></div>
    </div>
    <div class="grid">
      <details open><summary>Features</summary>${featureTable(d.features, 'feature')}</details>
      ${d.protocolFeatures ? `<details><summary>vhost-user protocol features</summary>${featureTable(d.protocolFeatures, 'protocol-feature')}</details>` : ''}
    </div>
  </section>`;
}

/** Draws `series` (arrays of [t, value]) over the last `windowMs`, y from 0 to the maximum seen. */
function plot(canvas, series, colors, now, windowMs, format) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const left = 64;
  const bottom = h - 18;
  let max = 0;
  for (const s of series) for (const [, v] of s) max = Math.max(max, v);
  const top = max > 0 ? max * 1.1 : 1;
  g.strokeStyle = '#d9dde5';
  g.fillStyle = '#6b7280';
  g.font = '11px system-ui, sans-serif';
  for (let k = 0; k <= 4; k++) {
    const y = bottom - ((bottom - 6) * k) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(w - 4, y);
    g.stroke();
    g.fillText(format((top * k) / 4), 4, y + 4);
  }
  const minutes = Math.round(windowMs / 60000);
  for (let m = 0; m <= minutes; m++) {
    const x = left + ((w - 4 - left) * (windowMs - m * 60000)) / windowMs;
    const label = m === 0 ? 'now' : `-${m}m`;
    g.fillText(label, Math.min(x - 10, w - 4 - g.measureText(label).width), h - 4);
  }
  series.forEach((s, i) => {
    g.strokeStyle = colors[i];
    g.lineWidth = 1.5;
    g.beginPath();
    s.forEach(([t, v], k) => {
      const x = left + ((w - 4 - left) * (t - (now - windowMs))) / windowMs;
      const y = bottom - ((bottom - 6) * v) / top;
      if (k === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  });
  canvas.dataset.max = String(max);
  canvas.dataset.points = String(series[0] ? series[0].length : 0);
}

function drawPlots(state) {
  const windowMs = 5 * 60 * 1000;
  for (const canvas of document.querySelectorAll('canvas[data-plot]')) {
    const rates = state.rates[canvas.dataset.device] || [];
    if (canvas.dataset.plot === 'requests') {
      plot(canvas, [rates.map((r) => [r.t, r.requests])], ['#2563eb'], state.now, windowMs, (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(1)));
    } else {
      plot(canvas, [rates.map((r) => [r.t, r.bytesRead]), rates.map((r) => [r.t, r.bytesWritten])], ['#0f766e', '#d97706'], state.now, windowMs, (v) => `${bytes(v)}`);
    }
  }
}

function render(state) {
  last = state;
  if (selected) {
    const d = state.devices.find((x) => x.name === selected.device);
    const q = d && d.queues[selected.queue];
    selected.gone = !(q && q.chains && q.chains.some((c) => c.id === selected.id));
  }
  $('#devices').innerHTML = state.devices.map(deviceSection).join('');
  const log = state.resetLog
    .slice()
    .reverse()
    .map((e) => `<li><span class="muted">${new Date(e.t).toLocaleTimeString()}</span> <b>${esc(e.device)}</b> ${esc(e.what)}</li>`)
    .join('');
  $('#reset-log').innerHTML = log || '<li class="muted">none seen</li>';
  $('#updated').textContent = `updated ${new Date(state.now).toLocaleTimeString()}`;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  drawPlots(state);
}

async function showChain(device, queue, id) {
  selected = { device, queue, id, detail: null, gone: false };
  if (last) render(last);
  try {
    const res = await fetch(`api/chain?${new URLSearchParams({ device, queue: String(queue), id: String(id) })}`);
    const body = await res.json();
    if (selected && selected.device === device && selected.queue === queue && selected.id === id) {
      selected.detail = res.ok ? body : { error: body.error || `HTTP ${res.status}` };
    }
  } catch (e) {
    if (selected) selected.detail = { error: String(e) };
  }
  if (last) render(last);
}

document.addEventListener('click', (ev) => {
  const b = ev.target instanceof window.Element ? ev.target.closest('button.chain') : null;
  if (b) void showChain(b.dataset.device, Number(b.dataset.queue), Number(b.dataset.chainId));
});

const conn = $('#conn');
const events = new EventSource('api/events');
events.onmessage = (ev) => {
  conn.textContent = 'live';
  conn.className = 'conn live';
  render(JSON.parse(ev.data));
};
events.onerror = () => {
  conn.textContent = 'disconnected (retrying)';
  conn.className = 'conn down';
};
window.addEventListener('resize', () => last && drawPlots(last));
