/*
 * tally.js: Tally's tracking script (readable source; `tracker/build` minifies it into
 * `tracker/tally.js`, which Tally serves at /js/tally.js).
 *
 *   <script defer data-domain="shop.example" src="https://TALLY_HOST/js/tally.js"></script>
 *
 * It speaks Plausible's Events API with the short keys of Plausible's own script (n, u, d, r,
 * p, $, i, h; sd and e on engagement events), and uses Plausible's event names, so goals and
 * dashboards treat both alike. It sets no cookie, writes nothing to storage and keeps no
 * identifier: Tally derives a daily visitor id from the request on the server.
 *
 * Attributes of its <script> tag:
 *   data-domain     the site (comma-separated for several sites: sent as written)
 *   data-api        the events endpoint (default: the script's origin + /api/event)
 *   data-hash       hash-based routing: the #fragment is part of the page (sent with h: 1)
 *   data-outbound   clicks on links to other hosts send "Outbound Link: Click" {url}
 *   data-downloads  clicks on links to files send "File Download" {url}; the value, if any, is
 *                   a comma-separated list of extensions that replaces the default list
 *
 * What is not sent (the rules of Plausible's script, except the automation one):
 *   - pages on localhost, 127.x.y.z, [::1] or [::], and file: pages;
 *   - anything while localStorage.tally_ignore is 'true' (set it by hand to exclude yourself);
 *   - nothing is skipped for automated browsers: Plausible's script ignores
 *     navigator.webdriver (unless window.__plausible is set); this one counts them, so that
 *     Playwright and Selenium tests of a site can see their events. Tally's server drops
 *     requests whose User-Agent is a bot, headless browser or automation tool.
 */
(function (window, document, location, history) {
  'use strict';

  var script = document.currentScript;
  var attribute = function (name) {
    return script.getAttribute('data-' + name);
  };
  var endpoint = attribute('api') || new URL(script.src).origin + '/api/event';
  var domain = attribute('domain');
  var hashMode = attribute('hash') != null;
  var downloads = attribute('downloads');
  var extensions =
    downloads != null &&
    (downloads || 'pdf,xlsx,docx,txt,rtf,csv,exe,key,pps,ppt,pptx,7z,pkg,rar,gz,zip,avi,mov,mp4,mpeg,wmv,midi,mp3,wav,wma,dmg')
      .replace(/\s/g, '')
      .split(',');

  // The page's engagement, as Plausible's script measures it: the deepest scroll (a fraction of
  // the page's height) and the milliseconds the page was visible and focused, reported as an
  // `engagement` event for the page when it is hidden, left, or replaced by a new page view.
  var page; // the last page view sent: {u, p} (its URL and props); undefined before the first
  var lastPath; // its path (with the fragment in hash mode): SPA navigations to it send nothing
  var depth; // deepest scroll on the page so far, 0..1
  var sentDepth; // the depth the last engagement event reported (-1: none sent yet)
  var engagedMs; // engaged time not yet reported
  var since; // when the current engaged stretch began (0: not engaged now)

  function now() {
    return Date.now();
  }

  function scrolled() {
    var root = document.documentElement;
    var height = Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0);
    depth = Math.max(depth, Math.min(1, (window.scrollY + window.innerHeight) / height));
  }

  function engaged() {
    return engagedMs + (since && now() - since);
  }

  // Sends the engagement event of the current page when it has something new to say: a deeper
  // scroll than last reported, or 3 s or more of engaged time.
  function report() {
    var ms = engaged();
    if (page && (depth > sentDepth || ms >= 3000)) {
      sentDepth = depth;
      engagedMs = 0;
      since = since && now();
      send({ n: 'engagement', u: page.u, d: domain, p: page.p, sd: Math.round(depth * 100), e: ms, h: hashMode ? 1 : void 0 });
    }
  }

  function shown() {
    return document.visibilityState == 'visible' && document.hasFocus();
  }

  // Visible and focused: engaged time runs. Hidden or blurred: it stops and is reported.
  function visibility() {
    if (shown()) {
      since = since || now();
    } else {
      engagedMs = engaged();
      since = 0;
      report();
    }
  }

  function send(payload, callback) {
    var body = JSON.stringify(payload);
    // text/plain is a "simple" request type: no CORS preflight, and Tally takes it as JSON.
    if (!(navigator.sendBeacon && navigator.sendBeacon(endpoint, new Blob([body], { type: 'text/plain' })))) {
      fetch(endpoint, { method: 'POST', body: body, keepalive: true, headers: { 'Content-Type': 'text/plain' } }).then(
        function (response) {
          callback && callback({ status: response.status });
        },
        function (error) {
          callback && callback({ error: error });
        }
      );
      return;
    }
    callback && callback();
  }

  // tally(name, {props, revenue: {amount, currency}, interactive, url, callback})
  function tally(name, options) {
    options = options || {};
    var callback = options.callback;
    var ignored;
    try {
      ignored = localStorage.tally_ignore == 'true';
    } catch (e) {}
    if (ignored || /^localhost$|^127(\.\d+){3}$|^\[::1?\]$/.test(location.hostname) || location.protocol == 'file:') {
      return callback && callback();
    }
    var payload = {
      n: name,
      u: options.url || location.href,
      d: domain,
      r: document.referrer || null,
      p: options.props,
      $: options.revenue,
      i: options.interactive === false ? false : void 0,
      h: hashMode ? 1 : void 0
    };
    if (name == 'pageview') {
      report();
      page = payload;
      depth = 0;
      sentDepth = -1;
      engagedMs = 0;
      since = shown() ? now() : 0;
      scrolled();
    }
    send(payload, callback);
  }

  // A page view on load and on each SPA navigation that changes the path.
  function pageview(navigation) {
    var path = location.pathname + (hashMode ? location.hash : '');
    if (!navigation || path != lastPath) {
      lastPath = path;
      tally('pageview');
    }
  }

  function navigated() {
    pageview(1);
  }

  function click(event) {
    var link = event.target.closest && event.target.closest('a[href]');
    if (!link || (event.type == 'auxclick' && event.button != 1)) return;
    var url = link.href.split('?')[0];
    if (attribute('outbound') != null && link.host && link.host != location.host) {
      tally('Outbound Link: Click', { props: { url: link.href } });
    } else if (extensions && extensions.indexOf(url.split('.').pop().toLowerCase()) >= 0) {
      tally('File Download', { props: { url: url } });
    }
  }

  var queue = window.tally && window.tally.q;
  window.tally = tally;

  var pushState = history.pushState;
  history.pushState = function () {
    pushState.apply(this, arguments);
    navigated();
  };
  window.addEventListener('popstate', navigated);
  if (hashMode) window.addEventListener('hashchange', navigated);
  // A page restored from the back/forward cache is viewed again.
  window.addEventListener('pageshow', function (event) {
    event.persisted && pageview();
  });
  document.addEventListener('click', click);
  document.addEventListener('auxclick', click);
  document.addEventListener('scroll', scrolled);
  document.addEventListener('visibilitychange', visibility);
  window.addEventListener('blur', visibility);
  window.addEventListener('focus', visibility);

  // A prerendered or background tab counts its page view once it is first shown.
  if (document.visibilityState == 'visible') {
    pageview();
  } else {
    document.addEventListener('visibilitychange', function first() {
      if (document.visibilityState == 'visible') {
        document.removeEventListener('visibilitychange', first);
        pageview();
      }
    });
  }

  // Calls made before the script loaded, queued by the page's stub.
  for (var i = 0; queue && i < queue.length; i++) tally.apply(null, queue[i]);
})(window, document, location, history);
