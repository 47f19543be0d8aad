// Shows the service's live state from /health on the placeholder page.
(function () {
  const out = document.getElementById('health');
  fetch('/health')
    .then((r) => r.json())
    .then((body) => { out.textContent = JSON.stringify(body, null, 2); })
    .catch((e) => { out.textContent = 'cannot reach /health: ' + e; });
})();
