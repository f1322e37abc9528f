// Agent console: the live conversation (server-sent events) and canned responses.
// Customer text is inserted with textContent only: it is never parsed as HTML.
(function () {
  "use strict";
  function appendTurn(list, t) {
    if (list.querySelector('li[data-id="' + t.id + '"]')) return;
    var li = document.createElement("li");
    li.className = "turn " + (t.role === "user" ? "user" : "bot") + " live";
    li.dataset.id = String(t.id);
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = t.role === "user" ? "Customer" : (t.agent ? "Agent" : "Bot");
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = t.text;
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
      if (e.detail.successful) form.reset();
      else alertBox("The reply was not sent: " + (e.detail.xhr.status === 502 ? "the chat server is unreachable" : "try again"));
    });
  }
  function alertBox(message) {
    var p = document.getElementById("reply-error");
    if (!p) {
      p = document.createElement("p");
      p.id = "reply-error";
      p.className = "error";
      document.getElementById("reply-form").appendChild(p);
    }
    p.textContent = message;
  }
  document.addEventListener("DOMContentLoaded", function () { startStream(); cannedResponses(); replyForm(); });
})();
