// Make the vendored widget manager find its own chunks and fonts next to this file:
// embed-amd.js computes its public path from its AMD module URI, which RequireJS would
// otherwise resolve against the page's folder.
(function () {
  var src = document.currentScript && document.currentScript.src;
  if (!src || typeof require === "undefined") return;
  var base = src.slice(0, src.lastIndexOf("/"));
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": base } });
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
