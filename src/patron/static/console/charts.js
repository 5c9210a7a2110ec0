// The dashboard's charts: reads their numbers from the JSON of the element's data-charts address,
// draws each with uPlot (times in UTC) and lists the same numbers in a table under it.
"use strict";

(function () {
  const COLOURS = ["#1a5fb4", "#a51d2d", "#26713b", "#8a4b00", "#613583", "#555555"];
  // the second series of these charts has its own scale, on the right
  const SECOND_SCALE = { orders: "Revenue" };
  // counts are whole numbers: their axis ticks too
  const WHOLE = [];
  for (let power = 1; power <= 1e9; power *= 10) {
    WHOLE.push(power, 2 * power, 5 * power);
  }

  function label(start, step) {
    const iso = new Date(start * 1000).toISOString();
    return step === "hour" ? iso.slice(0, 13).replace("T", " ") + ":00" : iso.slice(0, 10);
  }

  function number(value) {
    return Number.isInteger(value)
      ? value.toLocaleString("en")
      : value.toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  function table(chart) {
    const made = document.createElement("table");
    const caption = made.createCaption();
    caption.textContent = chart.title + " (UTC)";
    const head = made.createTHead().insertRow();
    for (const text of [chart.step === "hour" ? "Hour" : "Day", ...chart.series.map((s) => s.label)]) {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = text;
      head.appendChild(cell);
    }
    const body = made.createTBody();
    chart.starts.forEach((start, i) => {
      const row = body.insertRow();
      const when = document.createElement("th");
      when.scope = "row";
      when.textContent = label(start, chart.step);
      row.appendChild(when);
      for (const series of chart.series) {
        const cell = row.insertCell();
        cell.className = "n";
        cell.textContent = number(series.values[i]);
      }
    });
    return made;
  }

  function options(chart, width) {
    const second = SECOND_SCALE[chart.name];
    const series = [{ label: chart.step === "hour" ? "Hour" : "Day" }];
    chart.series.forEach((s, i) => {
      series.push({
        label: s.label,
        stroke: COLOURS[i % COLOURS.length],
        width: 2,
        scale: s.label === second ? "second" : "y",
        value: (u, v) => (v == null ? "" : number(v)),
      });
    });
    const axes = [{}, { scale: "y", incrs: WHOLE }];
    if (second) {
      axes.push({ scale: "second", side: 1, grid: { show: false } });
    }
    return {
      width: width,
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      series: series,
      axes: axes,
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
  }

  function draw(figure, chart) {
    const plot = figure.querySelector(".plot");
    const numbers = figure.querySelector("details");
    numbers.querySelector(".loading")?.remove();
    numbers.appendChild(table(chart));
    const data = [chart.starts, ...chart.series.map((s) => s.values)];
    const width = () => Math.max(280, plot.clientWidth);
    const drawn = new uPlot(options(chart, width()), data, plot);
    window.addEventListener("resize", () => drawn.setSize({ width: width(), height: 220 }));
  }

  function failed(container, message) {
    for (const figure of container.querySelectorAll("[data-chart]")) {
      const loading = figure.querySelector(".loading");
      if (loading) {
        loading.textContent = message;
        loading.classList.add("problem");
      }
    }
  }

  async function start(container) {
    let answer;
    try {
      answer = await fetch(container.dataset.charts, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
    } catch (error) {
      failed(container, "The charts could not be loaded.");
      return;
    }
    if (!answer.ok) {
      failed(container, "The charts could not be loaded (" + answer.status + ").");
      return;
    }
    const found = await answer.json();
    for (const chart of found.charts) {
      const figure = container.querySelector('[data-chart="' + chart.name + '"]');
      if (figure) {
        draw(figure, chart);
      }
    }
    container.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const container of document.querySelectorAll("[data-charts]")) {
      start(container);
    }
  });
})();
