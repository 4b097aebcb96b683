"""The checks every ARM resource passes, written once (after NetBox's APIViewTestCases).

A test class per resource subclasses ``ArmResourceTests``, declares its data and provides
a ``parent`` fixture that makes what the resource lives under; it inherits these tests.
"""

from __future__ import annotations

import copy
import json

import pytest

from controlplane.core.models import Operation
from tests.conftest import WS, assert_arm_error, run_operations, url


class ArmResourceTests:
    collection: str  # the list's path, under the test workspace or absolute
    resource_type: str  # e.g. Microsoft.MachineLearningServices/workspaces/computes
    body: dict  # a valid PUT body
    update: dict  # a PUT body that changes something
    names = ("first", "second")  # two valid new names
    bad_name: str | None = None  # a name a PUT refuses, or None when names are not checked
    bad_name_target: str = ""  # the field the refusal names
    long_running = False  # PUT and DELETE answer with an operation to poll
    tags_at: tuple[str, ...] = ("tags",)  # where a PUT body holds the resource's tags

    @pytest.fixture
    def parent(self, client):
        """What the resource lives under."""

    def path(self, name: str) -> str:
        return f"{self.collection}/{name}"

    def put(self, client, name: str, body: dict | None = None, **headers):
        return client.put(url(self.path(name)), body or self.body, format="json", **headers)

    def with_tags(self, tags: dict) -> dict:
        """The update body with ``tags`` where this resource keeps them."""
        body = copy.deepcopy(self.update)
        *parents, last = self.tags_at
        node = body
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = tags
        return body

    def assert_refused(self, client, body: dict, status: int, code: str, target: str | None):
        """A PUT of ``body`` on the created resource is refused, and nothing changed: the
        resource reads back as it did, ETag included. The body is sent as JSON text with
        escapes (\\u0000, \\ud800), as any client would."""
        path = url(self.path(self.names[0]))
        before = client.get(path)
        response = client.put(path, json.dumps(body), content_type="application/json")
        error = assert_arm_error(response, status, code, target)
        after = client.get(path)
        assert after.status_code == 200
        assert after.json() == before.json() and after["ETag"] == before["ETag"]
        return error

    def settle(self):
        if self.long_running:
            run_operations()

    @pytest.fixture
    def created(self, client, parent):
        response = self.put(client, self.names[0])
        assert response.status_code == 201, response.content
        self.settle()
        return response

    def test_it_answers_with_the_arm_envelope(self, client, created):
        body = created.json()
        full_path = self.path(self.names[0])
        if not full_path.startswith("/subscriptions"):
            full_path = f"{WS}{full_path}"
        assert body["id"].lower() == full_path.lower()
        assert body["name"] == self.names[0]
        assert body["type"] == self.resource_type
        assert isinstance(body["properties"], dict)
        assert body["systemData"]["createdBy"] == "alice"
        assert body["systemData"]["createdAt"] and body["systemData"]["lastModifiedAt"]
        assert created["ETag"].startswith('"')
        assert ("Azure-AsyncOperation" in created) == self.long_running
        got = client.get(url(self.path(self.names[0])))
        assert got.status_code == 200
        assert got.json()["id"] == body["id"]

    def test_it_lists_in_pages(self, client, parent):
        for name in self.names:
            assert self.put(client, name).status_code == 201
        seen, next_url = [], url(self.collection, "$top=1")
        while next_url:
            response = client.get(next_url.removeprefix("http://testserver"))
            assert response.status_code == 200, response.content
            page = response.json()
            assert set(page) == {"value", "nextLink"}
            assert len(page["value"]) <= 1
            seen += [row["name"] for row in page["value"]]
            next_url = page["nextLink"]
            assert next_url is None or next_url.startswith("http://testserver/")
        assert set(self.names) <= set(seen)

    def test_a_missing_resource_is_an_arm_404(self, client, parent):
        missing = url(self.path(self.names[1]))
        assert_arm_error(client.get(missing), 404, "ResourceNotFound")
        assert client.delete(missing).status_code == 204

    def test_a_write_must_match_the_current_etag(self, client, created):
        stale = {"HTTP_IF_MATCH": '"stale"'}
        etag = client.get(url(self.path(self.names[0])))["ETag"]
        response = self.put(client, self.names[0], self.update, **stale)
        assert_arm_error(response, 412, "PreconditionFailed", "If-Match")
        response = client.delete(url(self.path(self.names[0])), **stale)
        assert_arm_error(response, 412, "PreconditionFailed", "If-Match")
        response = self.put(client, self.names[0], HTTP_IF_NONE_MATCH="*")
        assert_arm_error(response, 412, "PreconditionFailed", "If-None-Match")
        assert client.get(url(self.path(self.names[0])))["ETag"] == etag
        fresh = self.put(client, self.names[0], self.update, HTTP_IF_MATCH=etag)
        assert fresh.status_code == 200, fresh.content
        assert fresh["ETag"] != etag

    def test_a_bad_name_is_refused_naming_the_field(self, client, parent):
        if self.bad_name is None:
            pytest.skip("this resource's names are not checked")
        response = self.put(client, self.bad_name)
        assert_arm_error(response, 400, "ValidationError", self.bad_name_target)

    def test_the_same_put_twice_changes_nothing(self, client, created):
        first = client.get(url(self.path(self.names[0])))
        operations = Operation.objects.count()
        # Names are matched ignoring case; the resource keeps the name it was created with.
        again = self.put(client, self.names[0].upper())
        assert again.status_code == 200, again.content
        assert again.json()["name"] == self.names[0]
        assert again["ETag"] == first["ETag"]
        assert again.json()["systemData"] == first.json()["systemData"]
        assert "Azure-AsyncOperation" not in again
        assert Operation.objects.count() == operations

    def test_a_changed_put_updates(self, client, created):
        response = self.put(client, self.names[0], self.update)
        assert response.status_code == 200, response.content
        assert response["ETag"] != created["ETag"]
        assert ("Azure-AsyncOperation" in response) == self.long_running

    def test_delete_then_it_is_gone(self, client, created):
        response = client.delete(url(self.path(self.names[0])))
        assert response.status_code == (202 if self.long_running else 200)
        self.settle()
        assert_arm_error(client.get(url(self.path(self.names[0]))), 404, "ResourceNotFound")
        assert client.delete(url(self.path(self.names[0]))).status_code == 204

    @pytest.mark.parametrize("key", ["team\u0000", "team\ud800"], ids=["nul", "surrogate"])
    def test_a_tag_name_postgres_cannot_store_is_refused(self, client, created, key):
        where = ".".join(self.tags_at)
        error = self.assert_refused(
            client, self.with_tags({key: "a"}), 400, "ValidationError", where
        )
        assert f"U+{ord(key[-1]):04X}" in error["message"]

    def test_tags_past_arm_limits_are_refused(self, client, created):
        where = ".".join(self.tags_at)
        for tags, code in [
            ({f"t{index}": "x" for index in range(51)}, "InvalidTags"),
            ({f"t{index}": "x" for index in range(10_000)}, "InvalidTags"),
            ({"n" * 513: "x"}, "InvalidTagName"),
            ({" ": "x"}, "InvalidTagName"),
            *[({f"a{c}b": "x"}, "InvalidTagNameCharacters") for c in "<>%&\\?/\t"],
            ({"a": "v" * 257}, "InvalidTagValueLength"),
            ({"a": "v" * 1024 * 1024}, "InvalidTagValueLength"),
        ]:
            self.assert_refused(client, self.with_tags(tags), 400, code, where)

    def test_tags_at_arm_limits_are_kept(self, client, created):
        tags = {f"t{index}": "v" * 256 for index in range(48)}
        tags |= {"n" * 512: "", "hidden-link:/subscriptions/s/resourceGroups/g": "Resource"}
        response = self.put(client, self.names[0], self.with_tags(tags))
        assert response.status_code == 200, response.content
        body = response.json()
        for key in self.tags_at:
            body = body[key]
        assert body == tags
