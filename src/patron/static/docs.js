/* Starts Swagger UI on the page at /v2/docs, on the OpenAPI document its script tag names. */
(function () {
  "use strict";
  var documentUrl = document.currentScript.getAttribute("data-document");
  window.addEventListener("DOMContentLoaded", function () {
    window.ui = SwaggerUIBundle({
      url: documentUrl,
      dom_id: "#swagger-ui",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset]
    });
  });
})();
