// Renders GraphiQL into <div id="graphiql" data-endpoint="/graphql"
// data-subscription-endpoint="/graphql/ws">. Loaded after graphiql.js (both
// with `defer`), so no inline script is needed (CSP script-src 'self').
(function () {
  'use strict';
  // Folder this script was loaded from, e.g. "/static/vendor/graphiql/".
  var script = document.currentScript;
  var base = script && script.src
    ? script.src.slice(0, script.src.lastIndexOf('/') + 1)
    : '/static/vendor/graphiql/';

  // Monaco (GraphiQL 5 editor) runs its language services in web workers,
  // vendored next to this file.
  globalThis.MonacoEnvironment = {
    getWorker: function (_workerId, label) {
      if (label === 'json') return new Worker(base + 'json.worker.js');
      if (label === 'graphql') return new Worker(base + 'graphql.worker.js');
      return new Worker(base + 'editor.worker.js');
    },
  };

  function absoluteUrl(path, ws) {
    var url = new URL(path, window.location.href);
    if (ws) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
  }

  function start() {
    var root = document.getElementById('graphiql');
    if (!root) return;
    var lib = globalThis.AmtsplatzGraphiQL;
    if (!lib) {
      root.textContent = 'GraphiQL konnte nicht geladen werden (graphiql.js fehlt).';
      return;
    }
    var endpoint = root.dataset.endpoint || '/graphql';
    var options = { url: absoluteUrl(endpoint, false) };
    if (root.dataset.subscriptionEndpoint) {
      options.subscriptionUrl = absoluteUrl(root.dataset.subscriptionEndpoint, true);
    }
    var fetcher = lib.createGraphiQLFetcher(options);
    var props = { fetcher: fetcher };
    if (root.dataset.defaultQuery) props.defaultQuery = root.dataset.defaultQuery;
    lib.createRoot(root).render(lib.React.createElement(lib.GraphiQL, props));
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
