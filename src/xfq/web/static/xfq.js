// xfq pages: the opening countdown and the dashboard's live numbers. No build step, no network
// beyond this site. Everything else is server-rendered HTML swapped in by htmx.
(function () {
  "use strict";

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  // The countdown follows the server's clock (sent with each rendering), not the device's.
  function tickCountdowns() {
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      if (!el.dataset.clientStartMs) {
        el.dataset.clientStartMs = String(Date.now());
      }
      var serverNow = Number(el.dataset.serverNowMs) + (Date.now() - Number(el.dataset.clientStartMs));
      var left = Math.max(0, Math.ceil((Number(el.dataset.opensAtMs) - serverNow) / 1000));
      el.textContent = pad(Math.floor(left / 3600)) + ":" + pad(Math.floor((left % 3600) / 60)) + ":" + pad(left % 60);
      if (left === 0 && !el.dataset.fired) {
        el.dataset.fired = "1";
        document.body.dispatchEvent(new CustomEvent("round-opened"));
      }
    });
  }

  function setText(selector, value) {
    var el = document.querySelector(selector);
    if (el && el.textContent !== String(value)) {
      el.textContent = String(value);
    }
  }

  function attr(name, key) {
    return "[" + name + '="' + CSS.escape(key) + '"]';
  }

  function drawChart(series, peak) {
    var chart = document.getElementById("chart");
    if (!chart) {
      return;
    }
    var top = Math.max(peak, 1);
    var bars = chart.querySelectorAll("rect");
    series.forEach(function (n, i) {
      var h = Math.floor((n * 100) / top);
      if (bars[i]) {
        bars[i].setAttribute("y", String(100 - h));
        bars[i].setAttribute("height", String(h));
      }
    });
  }

  function showNumbers(n) {
    Object.keys(n.remaining).forEach(function (id) {
      setText(attr("data-remaining", id), n.remaining[id]);
    });
    Object.keys(n.sold_out_at).forEach(function (id) {
      setText(attr("data-sold-out", id), n.sold_out_at[id]);
    });
    Object.keys(n.answers).forEach(function (code) {
      setText(attr("data-answer", code), n.answers[code]);
    });
    setText("#last-second", n.last_second);
    setText("#peak", n.peak);
    var now = document.getElementById("server-now");
    if (now) {
      setText("#server-now", now.dataset.template.replace("{time}", n.now));
    }
    drawChart(n.series, n.peak);
    document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
  }

  function startLive() {
    var live = document.getElementById("live");
    if (!live || !window.EventSource) {
      return;
    }
    var status = document.getElementById("live-status");
    var source = new EventSource(live.dataset.events);
    source.addEventListener("open", function () {
      status.textContent = status.dataset.liveText;
    });
    source.addEventListener("error", function () {
      status.textContent = status.dataset.reconnectingText;
    });
    source.addEventListener("numbers", function (event) {
      status.textContent = status.dataset.liveText;
      showNumbers(JSON.parse(event.data));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    document.body.addEventListener("htmx:afterSwap", tickCountdowns);
    startLive();
  });
})();
