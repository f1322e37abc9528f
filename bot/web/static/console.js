// Agent console: the live conversation (server-sent events) and canned responses.
// Customer text is inserted with textContent only: it is never parsed as HTML.
(function () {
  "use strict";
  var MOOD = { negative: 0, neutral: 1, positive: 2 };
  // The "Why a person" sentiment follows the customer's new messages (as handoff.live_sentiment).
  function updateMood(t) {
    var dd = document.getElementById("mood");
    if (!dd || t.role !== "user" || t.payload || !(t.sentiment in MOOD)) return;
    var n = Number(dd.dataset.messages || 0) + 1;
    var neg = Number(dd.dataset.negative || 0) + (t.sentiment === "negative" ? 1 : 0);
    var first = dd.dataset.first || t.sentiment;
    dd.dataset.messages = String(n);
    dd.dataset.negative = String(neg);
    dd.dataset.first = first;
    var trend = MOOD[t.sentiment] < MOOD[first] ? "worsening" : MOOD[t.sentiment] > MOOD[first] ? "improving" : "steady";
    dd.textContent = t.sentiment + " now" + (n > 1 ? ", " + trend : "") + " (" + neg + "/" + n + " messages negative)";
  }
  function appendTurn(list, t) {
    if (list.querySelector('li[data-id="' + t.id + '"]')) return;
    updateMood(t);
    var li = document.createElement("li");
    li.className = "turn " + (t.role === "user" ? "user" : "bot") + " live";
    li.dataset.id = String(t.id);
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = t.role === "user" ? "Customer" : (t.agent ? "Agent" : "Bot");
    var text = document.createElement("span");
    text.className = "text";
    if (t.payload) {
      li.className += " payload";
      var i = document.createElement("i");
      i.textContent = t.text;
      text.appendChild(i);
    } else {
      text.textContent = t.text;
    }
    var time = document.createElement("time");
    time.textContent = (t.at || "").slice(11, 19);
    li.append(who, " ", text, " ", time);
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }
  function startStream() {
    var list = document.getElementById("transcript");
    if (!list || !window.EventSource) return;
    var source = new EventSource(list.dataset.stream);
    source.addEventListener("turn", function (e) { appendTurn(list, JSON.parse(e.data)); });
    // the live view (Rasa's tracker) ended: Rasa unreachable or the conversation reassigned
    source.addEventListener("fallback", function (e) {
      source.close();
      var p = document.getElementById("live-ended");
      if (p) { p.textContent = JSON.parse(e.data).detail; p.hidden = false; }
    });
    source.addEventListener("status", function (e) {
      var s = document.getElementById("conv-status");
      if (s) s.textContent = JSON.parse(e.data).status;
    });
  }
  function cannedResponses() {
    var select = document.getElementById("canned");
    var text = document.getElementById("reply-text");
    if (!select || !text) return;
    select.addEventListener("change", function () {
      if (select.value) { text.value = select.value; text.focus(); }
    });
  }
  function replyForm() {
    var form = document.getElementById("reply-form");
    if (!form) return;
    form.addEventListener("htmx:afterRequest", function (e) {
      if (e.detail.successful) { form.reset(); showError(""); }
    });
  }
  // Any console action that fails (the chat server unreachable, a closed conversation, an expired
  // session) says so on the page: htmx itself swaps nothing on an error response.
  function errorText(xhr) {
    var detail = "";
    try { detail = JSON.parse(xhr.responseText).detail; } catch (err) { detail = ""; }
    if (typeof detail !== "string" || !detail) {
      detail = xhr.status === 401 ? "Your session has ended: log in again." : "Something went wrong (" + xhr.status + ").";
    }
    return detail;
  }
  function showError(message) {
    var p = document.getElementById("console-error");
    if (!p) return;
    p.textContent = message;
    p.hidden = !message;
  }
  function errorHandling() {
    document.body.addEventListener("htmx:responseError", function (e) {
      showError("Not done: " + errorText(e.detail.xhr));
    });
    document.body.addEventListener("htmx:sendError", function () {
      showError("Not done: the console's server is unreachable. Check your connection and try again.");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { startStream(); cannedResponses(); replyForm(); errorHandling(); });
})();
