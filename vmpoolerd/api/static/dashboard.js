// vmpoolerd dashboard: reads /dashboard/stats/vmpooler/{pool,running}
// every few seconds and draws one card per pool.  Data only ever reaches
// the page as text nodes and attributes, never as markup.
(function () {
  "use strict";

  var BASE = new URL(".", document.currentScript.src); // .../dashboard/
  var REFRESH_MS = 3000; // counts
  var HISTORY_MS = 15000; // history (the sampler's default interval is 10 s)
  var HORIZON = 3600;
  var W = 240, H = 34; // the charts' coordinate system
  var SVG = "http://www.w3.org/2000/svg";

  var grid = document.getElementById("pools");
  var totals = document.getElementById("totals");
  var status = document.getElementById("status");
  var spanLabel = document.getElementById("span");

  var cards = {};
  var layout = ""; // the pool names the grid was built for
  var history = {};
  var historyAt = 0;
  var skew = 0; // server clock minus ours, in seconds

  function element(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, cls) {
    var e = document.createElementNS(SVG, tag);
    if (cls) e.setAttribute("class", cls);
    return e;
  }

  async function getJson(path) {
    var response = await fetch(new URL(path, BASE), {cache: "no-store"});
    var date = Date.parse(response.headers.get("Date") || "");
    if (!isNaN(date)) skew = (date - Date.now()) / 1000;
    var body = await response.json();
    if (!response.ok) throw new Error((body && body.error) || "HTTP " + response.status);
    return body;
  }

  function makeCard(name) {
    var c = {root: element("article", "pool")};
    c.root.dataset.pool = name;
    var title = element("h2", "name", name);
    title.title = name;
    var counts = element("div", "counts");
    var left = element("span");
    var right = element("span");
    c.ready = element("b", "ready", "0");
    c.size = element("span", "size", "0");
    c.running = element("b", "running", "0");
    left.append(c.ready, " / ", c.size, " ready");
    right.append(c.running, " running");
    counts.append(left, right);
    var bar = element("div", "bar");
    c.fill = element("div", "fill");
    bar.append(c.fill);
    c.chart = svg("svg", "chart");
    c.chart.setAttribute("viewBox", "0 0 " + W + " " + H);
    c.chart.setAttribute("preserveAspectRatio", "none");
    c.chart.setAttribute("aria-hidden", "true");
    c.explain = element("div", "explain");
    c.root.append(title, counts, bar, c.chart, c.explain);
    return c;
  }

  function percent(rate) {
    return (Math.floor(rate * 1000) / 10) + "%";
  }

  // What /status says of a pool besides its counts: the hit rate achieved,
  // the size its demand sets and why, its failures (the last few in the
  // tooltip) and a pause of its clones.
  function explain(c, p) {
    var parts = [], d = p.demand, f = p.failures;
    if (d && d.achieved_hit_rate !== null && d.achieved_hit_rate !== undefined)
      parts.push(percent(d.achieved_hit_rate) + " hits (24 h)");
    if (d && d.policy === "demand" && d.size !== undefined)
      parts.push("sized " + d.size + " for " + d.rate_per_hour + "/h, target " +
                 percent(d.hit_rate));
    if (f) {
      var total = 0;
      Object.keys(f.count).forEach(function (kind) { total += f.count[kind]; });
      parts.push(total + (total === 1 ? " failure" : " failures"));
    }
    if (p.clones_paused) parts.push("clones paused");
    c.explain.textContent = parts.join(" \u00b7 ");
    c.explain.title = f ? f.recent.map(function (r) {
      return r.time + " " + r.host + ": " + r.reason;
    }).join("\n") : "";
  }

  function build(names) {
    grid.replaceChildren();
    cards = {};
    names.forEach(function (name) {
      cards[name] = makeCard(name);
      grid.append(cards[name].root);
    });
    layout = names.join("\n");
  }

  // A step line through [epoch, value] points, in chart coordinates.
  function steps(points, x, y) {
    var d = "";
    points.forEach(function (p, i) {
      d += i === 0 ? "M" + x(p[0]) + " " + y(p[1]) : "H" + x(p[0]) + "V" + y(p[1]);
    });
    return d;
  }

  function draw(c, samples, size, start, now) {
    var top = size;
    samples.forEach(function (s) { top = Math.max(top, s[1], s[2]); });
    top = Math.max(top, 1);
    var x = function (t) { return ((Math.max(t, start) - start) / (now - start) * W).toFixed(1); };
    var y = function (v) { return (H - 1 - v / top * (H - 3)).toFixed(1); };
    var area = svg("path", "ready-area");
    var ready = samples.map(function (s) { return [s[0], s[1]]; });
    area.setAttribute("d", steps(ready, x, y) + "V" + H + "H" + x(samples[0][0]) + "Z");
    var run = svg("path", "running-line");
    run.setAttribute("d", steps(samples.map(function (s) { return [s[0], s[2]]; }), x, y));
    var line = svg("line", "size-line");
    line.setAttribute("x1", "0");
    line.setAttribute("x2", String(W));
    line.setAttribute("y1", y(size));
    line.setAttribute("y2", y(size));
    c.chart.replaceChildren(line, area, run);
  }

  function render(pools, running) {
    var names = Object.keys(pools);
    if (names.join("\n") !== layout) build(names);
    // One time axis for every chart: the last hour, or less while the
    // daemon has sampled for less.
    var now = Date.now() / 1000 + skew;
    var start = now - 10;
    names.forEach(function (name) {
      var h = history[name];
      if (h && h.length) start = Math.min(start, h[0][0]);
    });
    start = Math.max(start, now - HORIZON);
    var seconds = Math.round(now - start);
    spanLabel.textContent = "last " + (seconds >= HORIZON - 60 ? "hour" :
      seconds < 120 ? seconds + " s" : Math.round(seconds / 60) + " min");

    var ready = 0, size = 0, run = 0;
    names.forEach(function (name) {
      var p = pools[name];
      var r = (running[name] || 0);
      var c = cards[name];
      ready += p.ready;
      size += p.size;
      run += r;
      c.ready.textContent = String(p.ready);
      c.size.textContent = String(p.size);
      c.running.textContent = String(r);
      c.fill.style.width = Math.min(100, p.size ? p.ready / p.size * 100 : 0) + "%";
      c.root.classList.toggle("empty", p.ready === 0);
      c.root.classList.toggle("low", p.ready > 0 && p.ready < p.size / 2);
      explain(c, p);
      var samples = (history[name] || []).filter(function (s) { return s[0] >= start; });
      draw(c, samples.concat([[now, p.ready, r]]), p.size, start, now);
    });
    return {pools: names.length, ready: ready, size: size, running: run};
  }

  function groups(byMajor) {
    var perPool = {};
    var parts = [];
    Object.keys(byMajor).forEach(function (major) {
      var g = byMajor[major];
      Object.assign(perPool, g.pools);
      if (g.running) parts.push(major + " " + g.running);
    });
    return {perPool: perPool, text: parts.join(", ")};
  }

  async function refresh() {
    try {
      var withHistory = Date.now() - historyAt >= HISTORY_MS;
      var answers = await Promise.all([
        getJson("stats/vmpooler/pool" + (withHistory ? "?history=1" : "")),
        getJson("stats/vmpooler/running"),
      ]);
      var pools = answers[0];
      if (withHistory) {
        history = {};
        Object.keys(pools).forEach(function (name) { history[name] = pools[name].history || []; });
        historyAt = Date.now();
      }
      var g = groups(answers[1]);
      var sum = render(pools, g.perPool);
      totals.textContent = sum.pools + " pools \u00b7 " + sum.ready + " / " + sum.size +
        " ready \u00b7 " + sum.running + " running" + (g.text ? " (" + g.text + ")" : "");
      status.textContent = "updated " + new Date().toLocaleTimeString();
      status.classList.remove("error");
      document.body.classList.remove("stale");
    } catch (e) {
      status.textContent = "not updated: " + e.message;
      status.classList.add("error");
      document.body.classList.add("stale");
    }
    setTimeout(refresh, REFRESH_MS);
  }

  refresh();
})();
