// Make the vendored widget manager find its own chunks and fonts next to this file:
// embed-amd.js computes its public path from its AMD module URI, which RequireJS would
// otherwise resolve against the page's folder. The named modules it defines
// ("@jupyter-widgets/controls", "@jupyter-widgets/base", ...) compute theirs the same
// way, and the controls load the icon fonts from it: map the whole scope here, or the
// fonts are requested from <page folder>/@jupyter-widgets/ and 404.
(function () {
  var src = document.currentScript && document.currentScript.src;
  if (!src || typeof require === "undefined") return;
  var base = src.slice(0, src.lastIndexOf("/"));
  require.config({
    paths: { "@jupyter-widgets/html-manager/dist": base, "@jupyter-widgets": base },
  });
})();

// The widget manager typesets labels with the MathJax 2 API (MathJax.Hub.Queue); the
// book loads MathJax 3, which has no Hub. Bridge the one call it makes.
document.addEventListener("DOMContentLoaded", function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub) return;
  mj.Hub = {
    Queue: function () {
      var elements = [];
      for (var i = 0; i < arguments.length; i++) {
        var a = arguments[i];
        if (Array.isArray(a) && a[0] === "Typeset" && a[2]) elements.push(a[2]);
      }
      if (elements.length && mj.typesetPromise) mj.typesetPromise(elements).catch(function () {});
    },
  };
});
