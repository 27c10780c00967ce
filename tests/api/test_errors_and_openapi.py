from starlette.routing import Route

from tests.api.conftest import assert_error


async def test_correlation_id_is_echoed_when_sane_and_generated_otherwise(client, tenant):
    given = await client.get("/v1/offers/nope", headers=tenant.headers | {"X-Request-Id": "req-123.abc"})
    assert assert_error(given, 404)["correlation_id"] == "req-123.abc"
    for bad in ("has space", "x" * 200, "semi;colon"):
        generated = await client.get("/v1/offers/nope", headers=tenant.headers | {"X-Request-Id": bad})
        assert assert_error(generated, 404)["correlation_id"] != bad
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_unknown_routes_and_methods_answer_in_the_error_shape(client, tenant):
    assert_error(await client.get("/v2/whatever", headers=tenant.headers), 404, "not_found")
    wrong = await client.delete("/v1/offers", headers=tenant.headers)
    assert_error(wrong, 405, "method_not_allowed")
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_an_unexpected_exception_is_a_logged_json_500(app, client, caplog):
    async def boom(request):
        raise RuntimeError("secret detail")

    app.router.routes.append(Route("/boom", boom))
    response = await client.get("/boom", headers={"X-Request-Id": "boom-1"})
    body = assert_error(response, 500, "internal_error")
    assert "secret detail" not in response.text and body["correlation_id"] == "boom-1"
    assert any("boom-1" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_openapi_lists_every_route_with_schemas_and_auth(client):
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    expected = {
        ("post", "/v1/advertisers"), ("get", "/v1/advertisers"), ("get", "/v1/advertisers/{advertiser_id}"),
        ("post", "/v1/affiliates"), ("get", "/v1/affiliates"), ("get", "/v1/affiliates/{affiliate_id}"),
        ("post", "/v1/offers"), ("get", "/v1/offers"), ("get", "/v1/offers/{offer_id}"), ("patch", "/v1/offers/{offer_id}"),
        ("put", "/v1/offers/{offer_id}/affiliates/{affiliate_id}"), ("post", "/v1/links"), ("get", "/v1/links"),
        ("get", "/healthz"), ("get", "/openapi.json"),
    }
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert expected <= listed
    schemas = doc["components"]["schemas"]
    assert {"code", "message", "correlation_id"} <= set(schemas["ErrorBody"]["required"])
    assert schemas["OfferCreate"]["additionalProperties"] is False
    assert schemas["OfferCreate"]["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    refs = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert any(code.startswith("2") for code in op["responses"]), (method, path)
            if (method, path) not in {("get", "/healthz"), ("get", "/openapi.json")}:
                assert op["security"] and "401" in op["responses"] and "422" in op["responses"]
                refs.append(op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"])
            if method in {"post", "put", "patch"}:
                refs.append(op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
            for name in [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]:
                assert "{" + name + "}" in path
    for ref in refs:  # every reference resolves
        assert ref.removeprefix("#/components/schemas/") in schemas
