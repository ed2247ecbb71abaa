// The REST API's reference page, /docs: Swagger UI (swagger-ui-dist, bundled
// by build.mjs like the chat page) over /openapi.json, the document generated
// from the protos. Same origin as the API, so "Try it out" calls it directly;
// "Authorize" takes `Bearer <access token>`.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#docs",
  deepLinking: true,
  // Operations are many: start folded, list them by tag (service) and filter by name.
  docExpansion: "none",
  filter: true,
});
