// Starts the rasa-webchat widget (window.WebChat, served by this app) with the settings rendered
// by the page as data-* attributes. A logged-in customer's page fetches a short-lived signed token
// from the shop's server and the widget sends it with every message as customData.customer_token.
(function () {
  "use strict";
  var script = document.currentScript;
  var cfg = script.dataset;
  var STATE_KEY = "chat_session"; // where rasa-webchat keeps the conversation (params.storage "local")
  var OWNER_KEY = "concierge_chat_owner";
  var storage = window.localStorage;

  // A different visitor identity (log-in, log-out) starts a new conversation; a reload keeps it.
  if (storage.getItem(OWNER_KEY) !== cfg.chatId) {
    storage.removeItem(STATE_KEY);
    storage.setItem(OWNER_KEY, cfg.chatId);
  }

  // The widget's own texts follow the page's language; the bot follows it too: every message carries
  // it as customData.language, and the opening greeting asks for it ("/greet{"language": "zh"}").
  var TEXTS = {
    en: {
      title: "Concierge",
      subtitle: "Orders, deliveries, returns and refunds",
      inputTextFieldHint: "Ask about an order, a refund...",
      connectingText: "Connecting..."
    },
    zh: {
      title: "Concierge 智能客服",
      subtitle: "订单、物流、退换货和退款",
      inputTextFieldHint: "问问订单、退款……",
      connectingText: "正在连接……"
    }
  };
  var lang = TEXTS[cfg.lang] ? cfg.lang : "en";
  var texts = TEXTS[lang];

  var customData = { language: lang }; // read at every message: refreshing the token updates it

  function fetchToken() {
    if (cfg.loggedIn !== "1") return Promise.resolve(null);
    return fetch(cfg.tokenUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.token) customData.customer_token = body.token;
        else delete customData.customer_token; // logged out elsewhere: the bot asks to verify
        return body;
      })
      .catch(function () { return null; });
  }

  function start() {
    window.WebChat.default({
      socketUrl: cfg.socketUrl,
      socketPath: cfg.socketPath,
      customData: customData,
      // a new conversation opens with the bot's greeting, in the page's language
      initPayload: '/greet{"language": "' + lang + '"}',
      params: { storage: "local", images: { dims: { width: 220, height: 165 } } },
      title: texts.title,
      subtitle: texts.subtitle,
      inputTextFieldHint: texts.inputTextFieldHint,
      connectingText: texts.connectingText,
      showFullScreenButton: false,
      showMessageDate: false,
      displayUnreadCount: true,
      customMessageDelay: function () { return 0; },
      mainColor: "#1f5f5b",
      userBackgroundColor: "#1f5f5b",
      userTextColor: "#ffffff",
      onSocketEvent: {
        connect: function () { document.documentElement.dataset.chatConnected = "1"; },
        disconnect: function () { document.documentElement.dataset.chatConnected = "0"; }
      }
    }, null);
    document.documentElement.dataset.chatStarted = "1";
  }

  var ttl = parseInt(cfg.tokenTtl || "900", 10);
  fetchToken().then(start, start);
  if (cfg.loggedIn === "1" && ttl > 30) {
    // renew well before the token expires so a long visit stays recognised
    window.setInterval(fetchToken, Math.max(15, Math.floor(ttl * 0.6)) * 1000);
  }
})();
