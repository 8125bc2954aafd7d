// The subscribe and manage pages: guess the time zone from the browser (subscribe: data-guess),
// preview the latest listing's matches as the keywords are typed (both: #preview).
(function () {
  "use strict";
  var zone = document.getElementById("timezone");
  try {
    var guessed = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (guessed && zone && zone.dataset.guess === "1") {
      zone.value = guessed;
    }
  } catch (e) { /* keep the server's default */ }
  var box = document.getElementById("preview");
  var keywords = document.getElementById("keywords");
  var exclude = document.getElementById("exclude");
  if (!box || !keywords) { return; }
  var timer = null;
  function show(data) {
    box.textContent = "";
    if (data.error) { var p = document.createElement("p"); p.className = "error"; p.textContent = data.error; box.appendChild(p); return; }
    var day = data.days && data.days[0];
    if (!day) { box.textContent = "No listing stored yet to preview."; return; }
    var head = document.createElement("p");
    head.textContent = "The latest listing (" + day.date + "): " + day.count + " of " + day.total + " papers would have been sent.";
    box.appendChild(head);
    var list = document.createElement("ol");
    day.papers.forEach(function (paper) {
      var li = document.createElement("li");
      var a = document.createElement(paper.url ? "a" : "span");
      if (paper.url) { a.href = paper.url; a.rel = "noopener noreferrer"; a.target = "_blank"; }
      a.textContent = paper.title;
      li.appendChild(a);
      if (paper.terms.length) { li.appendChild(document.createTextNode(" — " + paper.terms.join(", "))); }
      list.appendChild(li);
    });
    box.appendChild(list);
  }
  function update() {
    var q = "keywords=" + encodeURIComponent(keywords.value) + "&exclude=" + encodeURIComponent(exclude ? exclude.value : "");
    fetch("/preview?" + q, {headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json(); }).then(show).catch(function () { box.textContent = ""; });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 400); }
  keywords.addEventListener("input", later);
  if (exclude) { exclude.addEventListener("input", later); }
})();
