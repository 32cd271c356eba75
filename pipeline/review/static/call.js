// Call page: clicking anything with data-seek (flag, timeline shape, transcript line) seeks the audio;
// the playhead on the timeline and the current transcript line follow playback. No inline script (CSP).
(function () {
  "use strict";
  var audio = document.getElementById("player");
  var svg = document.getElementById("timeline");
  var playhead = document.getElementById("playhead");
  var lines = Array.prototype.slice.call(document.querySelectorAll("#transcript li.line"));

  function seek(t) {
    if (!audio || !isFinite(t)) return;
    audio.currentTime = Math.max(0, t);
    var p = audio.play();
    if (p && p.catch) p.catch(function () { /* autoplay refused or no output device: position still set */ });
  }

  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-seek]") : null;
    if (!el) return;
    ev.preventDefault();
    seek(parseFloat(el.getAttribute("data-seek")));
    var fid = el.getAttribute("data-flag-id");
    if (fid) {
      document.querySelectorAll("article.flag").forEach(function (a) {
        a.classList.toggle("selected", a.getAttribute("data-flag-id") === fid);
        if (a.getAttribute("data-flag-id") === fid) a.scrollIntoView({block: "nearest"});
      });
    }
  });

  if (!audio) return;
  // Opened from the flag list: start at the flag so one click on play hears the moment.
  var start = parseFloat(audio.getAttribute("data-start"));
  if (isFinite(start)) {
    var preset = function () { audio.currentTime = start; };
    if (audio.readyState >= 1) preset(); else audio.addEventListener("loadedmetadata", preset, {once: true});
    var sel = document.querySelector("article.flag.selected");
    if (sel) sel.scrollIntoView({block: "nearest"});
  }

  var current = null;
  audio.addEventListener("timeupdate", function () {
    var t = audio.currentTime;
    if (svg && playhead) {
      var x = parseFloat(svg.getAttribute("data-x0")) + t * parseFloat(svg.getAttribute("data-scale"));
      playhead.setAttribute("x1", x); playhead.setAttribute("x2", x);
    }
    var now = null;
    for (var i = 0; i < lines.length; i++) {
      var s = parseFloat(lines[i].getAttribute("data-start")), e = parseFloat(lines[i].getAttribute("data-end"));
      if (t >= s && t < e) { now = lines[i]; break; }
    }
    if (now !== current) {
      if (current) current.classList.remove("playing");
      if (now) now.classList.add("playing");
      current = now;
    }
  });
})();
