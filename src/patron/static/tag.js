/* Patron website tag: an Ometria-compatible tracking API (window.ometria).
 * The server fills in the origin and account hash placeholders below.
 * Wire format: see reference/ometria-api.md section 9. */
(function (window, document) {
  "use strict";

  var ORIGIN = "__PATRON_ORIGIN__", ACCOUNT = "__ACCOUNT_HASH__";
  var ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  var COOKIE_KEYS = ["cid", "sid", "slt", "nses", "npv", "src", "osrc", "osts", "tids", "bskt", "uiid", "ecamp"];
  var PAY_DOMAINS = /worldpay|paypal|myshopify|pay\.shopify\.com/i;

  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { return undefined; }
    };
  }

  function rand(n) {
    var out = "", i, buf = null, c = window.crypto;
    if (c && c.getRandomValues) { buf = new Uint8Array(n); c.getRandomValues(buf); }
    for (i = 0; i < n; i++) {
      out += ALNUM.charAt((buf ? buf[i] : Math.floor(Math.random() * 256)) % ALNUM.length);
    }
    return out;
  }

  function now() { return Math.floor(new Date().getTime() / 1000); }

  function extend(target, src) {
    if (src && typeof src === "object") {
      for (var k in src) { if (Object.prototype.hasOwnProperty.call(src, k)) { target[k] = src[k]; } }
    }
    return target;
  }

  function decode(s, keepPlus) {
    if (!keepPlus) { s = s.replace(/\+/g, " "); }
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }

  // Query-string parameter of the current page (null when absent).
  function param(name, keepPlus) {
    var parts = (window.location.search || "").replace(/^\?/, "").split("&"), i, eq;
    for (i = 0; i < parts.length; i++) {
      eq = parts[i].indexOf("=");
      if (decode(eq < 0 ? parts[i] : parts[i].slice(0, eq)) === name) {
        return eq < 0 ? "" : decode(parts[i].slice(eq + 1), keepPlus);
      }
    }
    return null;
  }

  function pageUrl() { return String(window.location.href).split("#")[0]; }

  /* ---- cookie ---- */

  function cookieDomain() {
    var host = String(window.location.hostname || "").toLowerCase();
    if (!host || host === "localhost" || host.indexOf(".") < 0 ||
        host.indexOf(":") >= 0 || /^\d+\.\d+\.\d+\.\d+$/.test(host)) {
      return null;
    }
    return "." + host.replace(/^(www|secure)\./, "");
  }

  function readCookie() {
    var parts = String(document.cookie || "").split(/;\s*/), i, j, v, pairs, eq, st;
    for (i = 0; i < parts.length; i++) {
      if (parts[i].indexOf("ometria=2_") !== 0) { continue; }
      v = decode(parts[i].slice(10), true);
      pairs = v.split("&");
      st = {};
      for (j = 0; j < pairs.length; j++) {
        eq = pairs[j].indexOf("=");
        if (eq > 0) { st[decode(pairs[j].slice(0, eq), true)] = decode(pairs[j].slice(eq + 1), true); }
      }
      if (st.cid) { return st; }
    }
    return null;
  }

  function writeCookie() {
    var qs = [], i, k, v, domain = cookieDomain();
    for (i = 0; i < COOKIE_KEYS.length; i++) {
      k = COOKIE_KEYS[i]; v = st[k];
      if (v !== undefined && v !== null && v !== "") {
        qs.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(v)));
      }
    }
    document.cookie = "ometria=2_" + encodeURIComponent(qs.join("&")) +
      "; path=/; expires=" + new Date(new Date().getTime() + 365 * 86400000).toUTCString() +
      "; SameSite=Lax" + (domain ? "; domain=" + domain : "");
  }

  /* ---- visitor and session state ---- */

  var refMatch = String(document.referrer || "").match(/^[a-z][a-z0-9+.\-]*:\/\/(?:[^\/?#@]*@)?([^\/?#]*)/i);
  var refHost = refMatch ? refMatch[1].toLowerCase() : "";
  var external = !!refHost && refHost !== String(window.location.host).toLowerCase();
  var rurl = external ? String(document.referrer) : "";

  var st = readCookie(), cnew = 0, snew = 0, lastSlt = 0;
  var cor = rand(16), site = "default", lnk = null;
  var ready = false, queue = [], pending = [], lastPvUrl = null;
  var pageTypeOverride = null, pageDataOverride = null, lastBasket = null;

  function makeSid() {
    var periods = Math.floor((new Date().getTime() - Date.UTC(2014, 0, 1)) / (30 * 86400000));
    return ACCOUNT.slice(0, 3) + ACCOUNT.slice(-3) + periods + rand(12);
  }

  function computeSrc() {
    var term = param("utm_term") || "", medium = param("utm_medium") || "",
      campaign = param("utm_campaign") || "", source = param("utm_source") || "",
      content = param("utm_content") || "", omc = param("om_campaign");
    if (param("gclid") !== null) { medium = "cpc"; source = "google"; }
    if (omc) { medium = "email"; source = "ometria"; campaign = omc; }
    return [external ? refHost : "", term, medium, campaign, source, content,
      Math.floor(new Date().getTime() / 86400000)].join("|");
  }

  function newSession() {
    snew = 1;
    st.sid = makeSid();
    st.nses = (+st.nses || 0) + 1;
    st.npv = 0;
    st.tids = "";
    st.src = computeSrc();
    if (!param("om_campaign")) { delete st.ecamp; }
  }

  function startState() {
    var t = now(), idle;
    if (!st) {
      st = { cid: rand(16), nses: 0 };
      cnew = 1;
      newSession();
    } else {
      lastSlt = +st.slt || 0;
      idle = t - lastSlt;
      if (!st.sid || idle > 1800 ||
          (external && idle > 600 && param("utm_nooverride") === null && !PAY_DOMAINS.test(refHost))) {
        newSession();
      }
    }
    if (param("om_campaign")) { st.ecamp = param("om_campaign"); }
    if (!st.osrc) { st.osrc = st.src; st.osts = t; }
    writeCookie();
  }

  // Identity switched to another person: start over as a new visitor.
  function resetVisitor() {
    st.cid = rand(16);
    cnew = 1;
    newSession();
    st.nses = 1;
    st.npv = lastPvUrl === null ? 0 : 1;
    st.osrc = st.src;
    st.osts = now();
    lastSlt = 0;
    delete st.bskt;
  }

  /* ---- wire format ---- */

  function serialise(obj, prefix, out, depth) {
    var isArr = Object.prototype.toString.call(obj) === "[object Array]", keys = [], i, k, v, key;
    if (depth > 12) { return out; }
    if (isArr) { for (i = 0; i < obj.length; i++) { keys.push(i); } }
    else { for (k in obj) { if (Object.prototype.hasOwnProperty.call(obj, k)) { keys.push(k); } } }
    for (i = 0; i < keys.length; i++) {
      v = obj[keys[i]];
      key = prefix ? prefix + "[" + keys[i] + "]" : String(keys[i]);
      if (v === undefined || typeof v === "function") { continue; }
      if (v && typeof v === "object") { serialise(v, key, out, depth + 1); }
      else { out.push(encodeURIComponent(key) + "=" + encodeURIComponent(v === null ? "null" : String(v))); }
    }
    return out;
  }

  function encodeData(obj) {
    return window.btoa(serialise(obj, "", [], 0).join("&")).replace(/[a-zA-Z]/g, function (c) {
      var l = c.toLowerCase();
      return c === l ? c.toUpperCase() : l;
    });
  }

  function beacon(D) {
    var img = new Image();
    pending.push(img);
    img.onload = img.onerror = function () {
      img.onload = img.onerror = null;
      for (var i = 0; i < pending.length; i++) { if (pending[i] === img) { pending.splice(i, 1); break; } }
    };
    img.src = ORIGIN + "/track/v3/" + ACCOUNT + "/event.gif?data=" + encodeURIComponent(D) +
      "&rnd=" + rand(6) + "&enc=" + encodeURIComponent(document.characterSet || "");
  }

  function transmit(item) {
    var t = now(), scr = window.screen || {}, ev;
    ev = {
      cid: st.cid, cnew: cnew ? 1 : 0, sid: st.sid, snew: snew ? 1 : 0,
      nses: +st.nses || 0, npv: +st.npv || 0, tlast: lastSlt ? t - lastSlt : 0
    };
    if (st.uiid) { ev.uiid = st.uiid; }
    extend(ev, { url: pageUrl(), rurl: rurl, src: st.src, osrc: st.osrc, osts: +st.osts || 0 });
    if (st.ecamp) { ev.ecamp = st.ecamp; }
    extend(ev, { tids: st.tids || "", dtouch: "ontouchstart" in window ? 1 : 0,
      dsize: scr.width + "x" + scr.height, enc: document.characterSet || "", cor: cor, site: site });
    if (lnk) { ev.lnk = lnk; }
    extend(ev, { d: item.d, type: item.type, channel: item.channel });

    st.slt = lastSlt = t;
    writeCookie();
    om._lastSent = ev;
    om._sent = (om._sent || 0) + 1;
    beacon(encodeData(ev));
    if (typeof item.cb === "function") { try { item.cb(); } catch (e) { /* shop callback */ } }
  }

  function send(type, d, channel, cb) {
    var item = { type: type, d: d || {}, channel: channel || "system", cb: cb };
    if (ready) { transmit(item); } else { queue.push(item); }
  }

  /* ---- public API ---- */

  function Basket() {
    this.lis = []; this.total = 0; this.size = 0;
    this.id = undefined; this.cur = undefined; this.url = undefined;
  }

  function num(v) {
    if (typeof v === "number") { return v; }
    var n = parseFloat(String(v === undefined || v === null ? "" : v).replace(/[^0-9.\-]/g, ""));
    return isNaN(n) ? 0 : n;
  }

  Basket.prototype.addLineItem = safe(function (productId, quantity, lineTotal, variantId, properties) {
    if (variantId && typeof variantId === "object") { properties = variantId; variantId = undefined; }
    var q = Math.floor(num(quantity));
    this.lis.push({ pid: productId, vid: variantId, q: q, tot: num(lineTotal), p: properties });
    this.size += q;
  });
  Basket.prototype.setTotal = safe(function (total, currencyCode) { this.total = num(total); this.cur = currencyCode; });
  Basket.prototype.setId = safe(function (id) { this.id = id; });
  Basket.prototype.setUrl = Basket.prototype.setURL = safe(function (url) { this.url = url; });
  Basket.prototype.setData = safe(function (obj) { this.data = obj; });
  Basket.prototype.setProperties = safe(function (obj) { this.p = obj; });
  Basket.prototype.signature = safe(function () { return this.size + "|" + this.total; });

  // The person an identity names: an omid: identity from an email link is "omid:<profile id>.<expiry>.
  // <signature>", a new one at each click, and each names the same person as the one before it.
  function person(identity) {
    return /^omid:/.test(identity) ? identity.replace(/\.[^.]*\.[^.]*$/, "") : identity;
  }

  function identify(identity, profileData) {
    if (typeof identity !== "string") { return; }
    identity = identity.replace(/^\s+|\s+$/g, "");
    if (!/\S+@\S+\.\S+/.test(identity) && !/^omid:.+/.test(identity)) { return; }
    if (st.uiid && person(st.uiid) !== person(identity)) { resetVisitor(); }
    st.uiid = identity;
    writeCookie();
    send("identify", { uiid: identity, profile: profileData || {} });
  }

  function pageview(type, data) {
    var url = pageUrl(), d = extend({}, data);
    if (url !== lastPvUrl) { st.npv = (+st.npv || 0) + 1; lastPvUrl = url; }
    d.rurl = rurl;
    d.type = type === "landing" ? "homepage" : type;
    transmit({ type: "pageview", d: d, channel: "system" });
  }

  function init2(pageType, pageData) {
    if (pageTypeOverride !== null) { pageType = pageTypeOverride; pageTypeOverride = null; }
    if (pageDataOverride !== null) { pageData = pageDataOverride; pageDataOverride = null; }
    pageview(pageType, pageData);
    ready = true;
    while (queue.length) { transmit(queue.shift()); }
    if (typeof window.onOmetriaLoaded === "function") { window.onOmetriaLoaded(); }
  }

  var om = {
    Basket: Basket,
    init: function (pageType, pageData, storeId) {
      site = storeId || "default";
      (function attempt() {
        if (document.body) { init2(pageType, pageData); } else { window.setTimeout(safe(attempt), 25); }
      })();
    },
    identify: identify,
    setProfileData: function (obj) {
      if (st.uiid) { send("profile", { profile: obj, uiid: st.uiid }); }
    },
    getIdentity: function () { return st.uiid || null; },
    setBasket: function (basket) {
      if (!basket || typeof basket !== "object") { return; }
      var sig = typeof basket.signature === "function" ? basket.signature() : basket.size + "|" + basket.total;
      lastBasket = basket;
      if (sig === st.bskt) { return; }
      st.bskt = sig;
      writeCookie();
      send("setbasket", { id: basket.id, total: basket.total, cur: basket.cur,
        size: basket.size, url: basket.url, lis: basket.lis });
    },
    getBasket: function () { return lastBasket; },
    trackAddToBasket: function (productId, quantity, extra) {
      send("addtobasket", extend({ pid: productId, q: quantity === undefined || quantity === null ? 1 : quantity }, extra));
    },
    trackCheckout: function (stage, extra) { send("checkout", extend({ stage: stage }, extra)); },
    trackTransaction: function (orderId, extra) {
      var tid = String(orderId), tids = st.tids ? String(st.tids).split("|") : [];
      if (tids.indexOf(tid) < 0) { tids.push(tid); st.tids = tids.join("|"); writeCookie(); }
      send("transaction", extend({ tid: orderId }, extra));
    },
    viewProduct: function (productId) { send("viewproduct", { pid: productId }); },
    viewProducts: function () {},
    event: function () {},
    track: function (eventType, data, callback) { send(String(eventType), data, "custom", callback); },
    setPageType: function (t) { pageTypeOverride = t; },
    setPageData: function (obj) { pageDataOverride = obj; },
    isNewVisitor: function () { return +st.nses === 1; },
    observeEmailInputs: function (cssSelector) {
      document.addEventListener("change", safe(function (e) {
        var el = e.target, m = el && (el.matches || el.msMatchesSelector || el.webkitMatchesSelector);
        if (m && m.call(el, cssSelector)) { identify(el.value); }
      }), true);
    },
    linkSession: function (on) { lnk = (on === undefined || on) ? "dsig" : null; },
    _debug: function () { return { cookie: extend({}, st), queue: queue.length }; }
  };

  for (var name in om) {
    if (Object.prototype.hasOwnProperty.call(om, name) && name !== "Basket") { om[name] = safe(om[name]); }
  }
  om._lastSent = null; om._sent = 0;

  try {
    var prev = window.ometria;
    if (prev && typeof prev === "object" && "raw_data" in prev) { om.raw_data = prev.raw_data; }
    startState();
  } catch (e) {
    st = st || { cid: rand(16), sid: makeSid(), nses: 1, npv: 0 };
  }
  window.ometria = om;

  // Identity passed in the URL (e.g. links in emails).
  try {
    var user = param("om_user", true) || param("kmi", true), profile = param("om_profile", true);
    if (user) { om.identify(user); }
    if (profile) { om.identify("omid:" + profile); }
  } catch (e) { /* ignore */ }
})(window, document);
