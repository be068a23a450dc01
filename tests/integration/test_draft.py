"""The IETF resumable-upload draft (interop versions 5 and 6) on /v1/uploads, with python
requests: what the draft's clients see, problem details (RFC 9457) included."""
import hashlib

import pytest
import requests

from test_uploads import JPEG, Client, jpeg, original

PROBLEM = "https://iana.org/assignments/http-problem-types#"


class Draft(Client):
    def __init__(self, server, interop="6", **kw):
        super().__init__(server, **kw)
        self.interop = interop

    def h(self, **extra):
        return {"Authorization": "Bearer " + self.token, "Upload-Draft-Interop-Version": self.interop, **extra}

    def post(self, body=None, complete="?0", **headers):
        return requests.post(self.s.http + "/v1/uploads", headers=self.h(**{"Upload-Complete": complete}, **headers),
                             data=body)

    def append(self, url, offset, body, complete="?0", **headers):
        h = {"Upload-Offset": str(offset), "Upload-Complete": complete, "Content-Type": "application/partial-upload"}
        h.update(headers)
        return requests.patch(url, headers=self.h(**h), data=body)


def problem(r, status, kind):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "application/problem+json", dict(r.headers)
    p = r.json()
    assert p["type"] == PROBLEM + kind and p["status"] == status and p["title"], p
    return p


@pytest.mark.parametrize("interop", ["5", "6"])
def test_create_append_and_complete(server, interop):
    d = Draft(server, interop)
    data = jpeg(300000)
    r = d.post(**{"Upload-Length": str(len(data))})
    assert r.status_code == 201, r.text
    assert r.headers["Upload-Complete"] == "?0" and r.headers["Upload-Offset"] == "0"
    assert r.headers["Upload-Draft-Interop-Version"] == interop and "Tus-Resumable" not in r.headers
    limit = dict(kv.split("=") for kv in r.headers["Upload-Limit"].split(", "))
    assert set(limit) == {"max-size", "max-append-size", "min-append-size", "expires"}, limit
    assert int(limit["max-append-size"]) == 16 << 20 and 0 < int(limit["expires"]) <= 86400, limit
    url = d.url(r)
    r = d.append(url, 0, data[:100000])
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "100000" and r.headers["Upload-Complete"] == "?0"
    h = requests.head(url, headers=d.h())
    assert h.status_code == 204 and h.headers["Upload-Offset"] == "100000", dict(h.headers)
    assert h.headers["Cache-Control"] == "no-store" and h.headers["Upload-Length"] == str(len(data))
    r = d.append(url, 100000, data[100000:], complete="?1")
    assert r.status_code == 204 and r.headers["Upload-Complete"] == "?1", (r.status_code, r.text)
    assert original(server, "a1", r.headers["Media-Id"]) == data


def test_whole_file_in_the_creation_request(server):
    d = Draft(server)
    data = jpeg(200000)
    r = d.post(data, complete="?1", **{"Content-Type": "image/jpeg"})
    assert r.status_code == 201 and r.headers["Upload-Complete"] == "?1", (r.status_code, r.text)
    assert r.headers["Upload-Length"] == str(len(data)) and r.headers["Location"].startswith("/v1/uploads/")
    stored = original(server, "a1", r.headers["Media-Id"])
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


def test_deferred_length_set_by_the_completing_append(server):
    d = Draft(server)
    data = jpeg(150000)
    url = d.url(d.post())
    assert d.append(url, 0, data[:50000]).status_code == 204
    r = d.append(url, 50000, data[50000:], complete="?1")
    assert r.status_code == 204 and r.headers["Upload-Length"] == str(len(data)), (r.status_code, r.text)
    assert original(server, "a1", r.headers["Media-Id"]) == data


def test_mismatched_offset_is_a_409_problem_naming_the_offset(server):
    d = Draft(server)
    url = d.url(d.post(**{"Upload-Length": "100000"}))
    assert d.append(url, 0, jpeg(1000)).status_code == 204
    r = d.append(url, 10, b"x" * 100)
    p = problem(r, 409, "mismatching-upload-offset")
    assert p["expected-offset"] == 1000 and p["provided-offset"] == 10 and p["error"] == "offset_mismatch", p
    assert r.headers["Upload-Offset"] == "1000"
    assert requests.head(url, headers=d.h()).headers["Upload-Offset"] == "1000"


def test_append_to_a_completed_upload_is_a_problem(server):
    d = Draft(server)
    data = jpeg(5000)
    url = d.url(d.post(**{"Upload-Length": str(len(data))}))
    media_id = d.append(url, 0, data, complete="?1").headers["Media-Id"]
    problem(d.append(url, len(data), b"more", complete="?1"), 400, "completed-upload")
    assert original(server, "a1", media_id) == data


def test_inconsistent_lengths_are_problems(server):
    d = Draft(server)
    # the completing request's Upload-Length is not where its bytes end
    problem(d.post(jpeg(1000), complete="?1", **{"Upload-Length": "999"}), 400, "inconsistent-upload-length")
    # the upload was created with a length; the client says it is complete earlier
    url = d.url(d.post(**{"Upload-Length": "5000"}))
    problem(d.append(url, 0, jpeg(1000), complete="?1"), 400, "inconsistent-upload-length")
    assert requests.head(url, headers=d.h()).headers["Upload-Offset"] == "0"


def test_bad_draft_requests(server):
    d = Draft(server)
    url = d.url(d.post(**{"Upload-Length": "5000"}))
    # interop 3 (draft -01, Apple's URLSession) is not spoken
    r = requests.post(server.http + "/v1/uploads", headers={**d.h(), "Upload-Draft-Interop-Version": "3",
                                                            "Upload-Incomplete": "?1"})
    assert r.status_code == 400 and "5 (draft -03)" in r.json()["message"], r.text
    r = requests.patch(url, headers=d.h(**{"Upload-Offset": "0", "Content-Type": "application/partial-upload"}),
                       data=JPEG)
    assert r.status_code == 400 and "Upload-Complete" in r.json()["message"], r.text
    r = d.append(url, 0, JPEG, **{"Content-Type": "application/octet-stream"})
    assert r.status_code == 415 and "application/partial-upload" in r.json()["message"], r.text
    assert requests.head(url, headers=d.h()).headers["Upload-Offset"] == "0"


def test_cancel_with_delete(server):
    d = Draft(server)
    url = d.url(d.post(**{"Upload-Length": "5000"}))
    assert requests.delete(url, headers=d.h()).status_code == 204
    assert requests.head(url, headers=d.h()).status_code == 404
