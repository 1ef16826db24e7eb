// Copy button for a saved report's link. No inline script (CSP), no framework.
'use strict';
(function () {
  var button = document.getElementById('copy-link');
  if (!button) return;
  button.addEventListener('click', function () {
    var link = button.getAttribute('data-link') || '';
    var done = function () { button.textContent = 'Copied'; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(link).then(done, function () { select(); });
    } else {
      select();
    }
  });
  function select() {
    var node = document.getElementById('report-link');
    if (!node) return;
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = 'Press Ctrl+C to copy';
  }
})();
