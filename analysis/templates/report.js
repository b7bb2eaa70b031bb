/* quest-lab report: sortable and filterable tables, inline (no network). Numeric columns of every table
   are right-aligned. In a sortable table a click (or Enter) on a header sorts by that column, ascending
   then descending; numeric columns sort as numbers ("26,784", "1.3e5"); missing cells ("—") stay last.
   A filter box keeps the rows that contain every word typed. */
(function () {
  "use strict";
  var MISSING = "\u2014";
  function num(text) {
    var t = text.replace(/[,\s%]/g, "");
    return /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t) ? parseFloat(t) : NaN;
  }
  function cellText(row, c) {
    var cell = row.cells[c];
    return cell ? cell.textContent.trim() : "";
  }
  function setupTable(table) {
    var body = table.tBodies[0];
    if (!body || !table.tHead) return;
    var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    var numeric = [];
    var sortable = table.classList.contains("sortable-table");
    for (var c = 0; c < heads.length; c++) {
      var seen = false, all = true;
      for (var r = 0; r < body.rows.length; r++) {
        var t = cellText(body.rows[r], c);
        if (t === MISSING || t === "") continue;
        seen = true;
        if (isNaN(num(t))) { all = false; break; }
      }
      numeric.push(seen && all);
    }
    Array.prototype.forEach.call(table.rows, function (row) {
      Array.prototype.forEach.call(row.cells, function (cell, c) { if (numeric[c]) cell.classList.add("num"); });
    });
    if (!sortable) return;
    Array.prototype.forEach.call(heads, function (th, c) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent.trim();
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var keyed = Array.prototype.map.call(body.rows, function (row, i) {
          var t = cellText(row, c);
          return {row: row, i: i, missing: t === MISSING || t === "", key: numeric[c] ? num(t) : t};
        });
        keyed.sort(function (a, b) {
          if (a.missing !== b.missing) return a.missing ? 1 : -1;
          var d = a.missing ? 0 : numeric[c] ? a.key - b.key
            : a.key.localeCompare(b.key, undefined, {numeric: true, sensitivity: "base"});
          return d === 0 ? a.i - b.i : (asc ? d : -d);
        });
        keyed.forEach(function (k) { body.appendChild(k.row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
  }
  function setupFilter(input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(input.getAttribute("data-count"));
    if (!table || !table.tBodies[0]) return;
    var rows = table.tBodies[0].rows;
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var text = row.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        row.hidden = !keep;
        if (keep) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " rows shown";
    }
    input.addEventListener("input", apply);
    apply();
  }
  Array.prototype.forEach.call(document.querySelectorAll("table"), setupTable);
  Array.prototype.forEach.call(document.querySelectorAll("input.table-filter"), setupFilter);
})();
