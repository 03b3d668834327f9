"""ChunkedUpload inside the DataFileChooser, driven by the messages a browser sends.

Messages go in through the widget's comm exactly as the kernel delivers them
(``comm.handle_msg`` with the custom-message content and the binary buffers), and the
kernel's replies are read back from the same comm, so the widget, the chooser and the
files on disk are all real; only the websocket is missing.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import comm
import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.widgets import upload as upload_module
from plasmonwidgets.widgets.file_chooser import DataFileChooser
from plasmonwidgets.widgets.upload import MIB, ChunkedUpload, too_large_message


class RecordingComm(comm.DummyComm):
    """A comm that keeps the custom messages the widget sends to the browser."""

    def __init__(self, *args, **kwargs):
        self.sent: list[dict] = []
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        if msg_type == "comm_msg" and data and data.get("method") == "custom":
            self.sent.append(data["content"])


@pytest.fixture(autouse=True)
def recording_comms(monkeypatch):
    monkeypatch.setattr(comm, "create_comm", RecordingComm)


@pytest.fixture(autouse=True)
def nothing_raised_into_the_comm_layer(caplog):
    """ipywidgets logs (and swallows) exceptions of message handlers; there must be none."""
    caplog.set_level(logging.WARNING)
    yield
    raised = [r for r in caplog.records if r.exc_info]
    assert not raised, [r.getMessage() for r in raised]


def deliver(widget, content, buffers=()) -> dict | None:
    """Hand one custom message to the widget's comm; return the kernel's reply, if any."""
    before = len(widget.comm.sent)
    widget.comm.handle_msg({
        "content": {"comm_id": widget.comm.comm_id,
                    "data": {"method": "custom", "content": content}},
        "buffers": [memoryview(b) for b in buffers],
    })  # fmt: skip
    replies = widget.comm.sent[before:]
    assert len(replies) <= 1, replies
    return replies[0] if replies else None


def send_file(widget, uid, name, data: bytes, chunk: int, batch="b1", size=None) -> list[dict]:
    """Play the browser's side: start, then one piece per acknowledgement; all replies."""
    reply = deliver(widget, {"type": "start", "id": uid, "batch": batch, "name": name,
                             "size": len(data) if size is None else size})
    replies = [reply]
    while reply["type"] == "ack":
        offset = reply["received"]
        reply = deliver(widget, {"type": "chunk", "id": uid, "offset": offset},
                        [data[offset:offset + chunk]])
        replies.append(reply)
    return replies


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def chooser(data_root):
    c = DataFileChooser(data_root, max_upload_mb=2)
    yield c
    c.close()


def shown(chooser) -> str:
    """The status line's text as the user reads it (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", chooser.status.value))


def is_alert(chooser) -> bool:
    return 'role="alert"' in chooser.status.value


def upload_files(chooser) -> list[Path]:
    folder = chooser._upload_dir
    return sorted(folder.iterdir()) if folder is not None and folder.exists() else []


def test_chooser_uses_the_chunked_upload_with_its_limit(chooser):
    assert isinstance(chooser.upload, ChunkedUpload)
    assert chooser.upload.max_bytes == 2 * MIB == chooser.max_upload_bytes
    assert chooser.upload.accept == ".dm3,.dm4,.emd,.hspy,.npz"
    assert chooser.upload.chunk_bytes == MIB  # well below Tornado's 10 MiB message cap


def test_real_dm4_in_many_pieces_is_streamed_to_disk_and_loads(chooser, dm4, data_root):
    data = dm4.read_bytes()
    chunk = 64 * 1024
    up = chooser.upload
    reply = deliver(up, {"type": "start", "id": "t1", "batch": "b1", "name": dm4.name,
                         "size": len(data)})
    assert reply == {"type": "ack", "id": "t1", "received": 0}
    (partial,) = upload_files(chooser)
    offsets = []
    while reply["type"] == "ack":
        offsets.append(reply["received"])
        # each piece is on disk before the next is asked for: nothing accumulates in memory
        assert partial.stat().st_size == reply["received"]
        assert up.in_progress == {"t1": (dm4.name, reply["received"], len(data))}
        assert chooser.uploaded == []  # not listed while incomplete
        reply = deliver(up, {"type": "chunk", "id": "t1", "offset": reply["received"]},
                        [data[reply["received"]:reply["received"] + chunk]])
    assert offsets == list(range(0, len(data), chunk)) and len(offsets) == 6
    assert reply == {"type": "done", "id": "t1", "name": "EELS_SI.dm4", "size": len(data)}
    assert up.in_progress == {}

    (path,) = chooser.uploaded
    assert path == partial and path.read_bytes() == data
    assert path.parent == chooser._upload_dir and data_root not in path.parents
    # the FileUpload behaviour is kept: listed, selected, status says so, Load enabled
    assert str(path) in [v for _, v in chooser.folder.options]
    assert chooser.selected == (path, None) and not chooser.load_button.disabled
    assert shown(chooser).startswith("Selected EELS_SI.dm4 (332.1 kB)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the dm4 has no HAADF: stand-in warning
        uploaded, original = pw.load(path), pw.load(dm4)
    assert uploaded.spectra.shape == original.spectra.shape
    np.testing.assert_array_equal(np.asarray(uploaded.spectra), np.asarray(original.spectra))


def test_same_name_twice_does_not_overwrite(chooser):
    first = send_file(chooser.upload, "a", "scan.hspy", b"first", chunk=2)[-1]
    second = send_file(chooser.upload, "b", "scan.hspy", b"second", chunk=4)[-1]
    assert (first["name"], second["name"]) == ("scan.hspy", "scan-1.hspy")
    assert [p.read_bytes() for p in chooser.uploaded] == [b"first", b"second"]


@pytest.mark.parametrize("hostile, stored", [
    ("../../etc/passwd.dm4", "passwd.dm4"),
    ("/etc/passwd.dm4", "passwd.dm4"),
    ("C:\\Windows\\System32\\evil.dm4", "evil.dm4"),
    ("..\\..\\..\\boot.ini.dm3", "boot.ini.dm3"),
    ("/tmp/.hidden scan (1).emd", "hidden_scan_1.emd"),
])  # fmt: skip
def test_hostile_names_land_sanitised_inside_the_upload_folder(chooser, data_root, hostile, stored):
    reply = send_file(chooser.upload, "h1", hostile, b"payload", chunk=3)[-1]
    assert reply["type"] == "done" and reply["name"] == stored
    (path,) = chooser.uploaded
    assert path.name == stored and path.parent == chooser._upload_dir
    assert path.read_bytes() == b"payload"
    assert data_root not in path.parents
    assert upload_files(chooser) == [path]  # nothing written anywhere else in the folder


@pytest.mark.parametrize("name, message", [
    ("../..", "uploaded file name '../..' has no usable characters; rename the file"),
    ("evil.sh", "'evil.sh' is not a supported file type; upload one of .dm3, .dm4, .emd, .hspy, .npz"),
    ("store.zspy", "'store.zspy' is not a supported file type"),
])  # fmt: skip
def test_unusable_names_and_types_are_refused_before_any_byte(chooser, name, message):
    reply = deliver(chooser.upload, {"type": "start", "id": "x", "batch": "b", "name": name,
                                     "size": 10})
    assert reply["type"] == "error" and message in reply["message"]
    assert message in shown(chooser) and is_alert(chooser)
    assert upload_files(chooser) == [] and chooser.uploaded == []


def test_announced_size_over_the_limit_is_refused_at_start(chooser):
    # a client that skipped the browser-side check
    reply = deliver(chooser.upload, {"type": "start", "id": "big", "batch": "b",
                                     "name": "big.dm4", "size": 3 * MIB})
    expected = ("'big.dm4' is 3.0 MB, over the 2 MB upload limit; put the file in the data "
                "folder instead")
    assert reply == {"type": "error", "id": "big", "message": expected}
    assert expected in shown(chooser)
    assert upload_files(chooser) == []


def test_client_exceeding_the_limit_mid_stream_is_cut_off(chooser):
    up = chooser.upload
    # announces just under 2 MiB, then sends 1.5 MiB pieces past it
    replies = send_file(up, "liar", "liar.dm4", b"\0" * (3 * MIB), chunk=3 * MIB // 2,
                        size=2 * MIB - 10)
    assert [r["type"] for r in replies] == ["ack", "ack", "error"]
    assert replies[-1]["message"] == (
        "'liar.dm4' grew past the 2 MB upload limit while uploading (3.0 MB sent); the upload "
        "was stopped and the partial file deleted")
    assert "grew past the 2 MB upload limit" in shown(chooser)
    assert upload_files(chooser) == [] and chooser.uploaded == [] and up.in_progress == {}
    # whatever it sends next is refused too
    late = deliver(up, {"type": "chunk", "id": "liar", "offset": 2 * MIB}, [b"\0" * 10])
    assert late["type"] == "error" and "does not know" in late["message"]


def test_client_sending_more_than_it_announced_is_cut_off(chooser):
    replies = send_file(chooser.upload, "more", "more.hspy", b"x" * 3000, chunk=2000, size=1000)
    assert replies[-1]["type"] == "error"
    assert "sent more than the 1000 bytes it announced" in replies[-1]["message"]
    assert upload_files(chooser) == [] and chooser.uploaded == []


def test_out_of_order_piece_stops_the_transfer_and_deletes_the_partial(chooser):
    up = chooser.upload
    deliver(up, {"type": "start", "id": "o", "batch": "b", "name": "o.dm4", "size": 300})
    assert deliver(up, {"type": "chunk", "id": "o", "offset": 0}, [b"a" * 100])["received"] == 100
    reply = deliver(up, {"type": "chunk", "id": "o", "offset": 200}, [b"c" * 100])
    assert reply == {"type": "error", "id": "o", "message": (
        "'o.dm4': a piece for byte 200 arrived while byte 100 was expected; the upload was "
        "stopped, upload the file again")}  # fmt: skip
    assert "a piece for byte 200 arrived" in shown(chooser)
    assert upload_files(chooser) == [] and up.in_progress == {}


def test_unknown_and_malformed_messages_get_clear_answers(chooser):
    up = chooser.upload
    reply = deliver(up, {"type": "chunk", "id": "nobody", "offset": 0}, [b"abc"])
    assert reply["type"] == "error"
    assert reply["message"] == ("a piece of an upload the kernel does not know arrived (it was "
                                "stopped or never started); upload the file again")
    assert "does not know" in shown(chooser)

    deliver(up, {"type": "start", "id": "m", "batch": "b", "name": "m.dm4", "size": 10})
    assert "2 buffers" in deliver(up, {"type": "chunk", "id": "m", "offset": 0},
                                  [b"a", b"b"])["message"]
    deliver(up, {"type": "start", "id": "e", "batch": "b", "name": "e.dm4", "size": 10})
    assert "empty piece" in deliver(up, {"type": "chunk", "id": "e", "offset": 0}, [b""])["message"]
    assert "unknown upload message type 'explode'" in deliver(
        up, {"type": "explode", "id": "q"})["message"]
    assert "valid name and size" in deliver(
        up, {"type": "start", "id": "s", "name": "a.dm4", "size": "10"})["message"]
    # no id or not even a dict: nobody to answer, but the page says what happened
    assert deliver(up, {"type": "chunk", "offset": 0}, [b"x"]) is None
    assert "without a valid transfer id" in shown(chooser)
    assert deliver(up, ["not", "a", "dict"]) is None
    assert "malformed upload message" in shown(chooser)
    assert upload_files(chooser) == [] and up.in_progress == {}


def test_refusal_in_the_browser_shows_in_status_next_to_the_accepted_files(chooser):
    up = chooser.upload
    assert deliver(up, {"type": "refused", "batch": "sel1", "name": "huge.dm4",
                        "size": 3 * MIB}) is None  # nothing to answer
    expected = ("'huge.dm4' is 3.0 MB, over the 2 MB upload limit; put the file in the data "
                "folder instead")
    assert expected in shown(chooser) and is_alert(chooser)
    # a file accepted in the same selection is stored and selected; the refusal stays visible
    assert send_file(up, "ok1", "small.dm4", b"12345", chunk=2, batch="sel1")[-1]["type"] == "done"
    assert chooser.selected[0].name == "small.dm4"
    assert expected in shown(chooser)
    # the next selection starts with a clean slate
    send_file(up, "ok2", "next.dm4", b"12345", chunk=5, batch="sel2")
    assert "Selected next.dm4" in shown(chooser) and not is_alert(chooser)
    assert "over the 2 MB" not in shown(chooser)


def test_cancel_and_close_delete_partial_files(chooser):
    up = chooser.upload
    deliver(up, {"type": "start", "id": "c", "batch": "b", "name": "c.dm4", "size": 100})
    deliver(up, {"type": "chunk", "id": "c", "offset": 0}, [b"x" * 50])
    reply = deliver(up, {"type": "cancel", "id": "c", "reason": "the browser could not read the file"})
    assert reply["type"] == "error"
    assert "'c.dm4' was stopped by the browser: the browser could not read" in shown(chooser)
    assert upload_files(chooser) == []

    deliver(up, {"type": "start", "id": "d", "batch": "b", "name": "d.dm4", "size": 100})
    deliver(up, {"type": "chunk", "id": "d", "offset": 0}, [b"x" * 50])
    (partial,) = upload_files(chooser)
    up.close()
    assert not partial.exists() and up.in_progress == {}


def test_disabled_upload_refuses_in_the_kernel_too(chooser):
    chooser.upload.disabled = True
    reply = deliver(chooser.upload, {"type": "start", "id": "d", "batch": "b", "name": "d.dm4",
                                     "size": 3})
    assert reply["message"] == "'d.dm4': uploads are switched off here"
    assert upload_files(chooser) == []


def test_empty_file_is_stored_at_start(chooser):
    reply = deliver(chooser.upload, {"type": "start", "id": "z", "batch": "b", "name": "z.npz",
                                     "size": 0})
    assert reply == {"type": "done", "id": "z", "name": "z.npz", "size": 0}
    assert chooser.uploaded[0].read_bytes() == b""


def test_a_failing_listener_is_reported_not_raised(chooser):
    def broken(_path):
        raise RuntimeError("listing exploded")

    chooser.upload.on_file(broken)
    reply = send_file(chooser.upload, "f", "f.dm4", b"abc", chunk=3)[-1]
    assert reply["type"] == "done"  # the file itself is stored
    assert shown(chooser) == "'f.dm4' was uploaded, but showing it failed: RuntimeError: listing exploded"


def test_too_many_open_transfers_are_refused(chooser):
    up = chooser.upload
    for i in range(4):
        assert deliver(up, {"type": "start", "id": f"p{i}", "batch": "b", "name": f"p{i}.dm4",
                            "size": 10})["type"] == "ack"
    reply = deliver(up, {"type": "start", "id": "p4", "batch": "b", "name": "p4.dm4", "size": 10})
    assert "4 uploads are already running" in reply["message"]
    assert len(upload_files(chooser)) == 4


def test_python_side_value_is_stored_like_an_upload_and_cleared(chooser):
    chooser.upload.value = ({"name": "py.dm3", "content": memoryview(b"12")},
                            {"name": "evil.sh", "content": b"#!/bin/sh"})
    assert chooser.upload.value == ()
    assert [p.name for p in chooser.uploaded] == ["py.dm3"]
    assert chooser.selected[0].read_bytes() == b"12"
    assert "'evil.sh' is not a supported file type" in shown(chooser)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to import the upload ES module")
def test_browser_and_kernel_word_the_refusal_alike():
    cases = [("big.dm4", 3 * MIB, 2 * MIB, "put the file in the data folder instead"),
             ("x.emd", 250 * MIB + 12345, 200 * MIB, ""),
             ("tiny.hspy", 2048, int(0.001 * MIB), "hint")]
    module = (Path(upload_module.__file__).parent / "static" / "upload.js").as_uri()
    script = (f"import {{ tooLargeText }} from {json.dumps(module)};\n"
              f"const cases = {json.dumps(cases)};\n"
              "console.log(JSON.stringify(cases.map((c) => tooLargeText(...c))));\n")
    out = subprocess.run([shutil.which("node"), "--input-type=module", "-e", script],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(out) == [too_large_message(*c) for c in cases]


def test_an_unexpected_failure_is_answered_not_raised(tmp_path):
    def broken_destination(name, size):
        raise ZeroDivisionError("division by zero")

    up = ChunkedUpload(destination=broken_destination)
    seen = []
    up.on_problem(seen.append)
    reply = deliver(up, {"type": "start", "id": "u", "batch": "b", "name": "a.dm4", "size": 5})
    assert reply == {"type": "error", "id": "u", "message": "upload failed in the kernel"}
    assert seen == ["upload failed in the kernel: ZeroDivisionError: division by zero"]
    assert up.in_progress == {}
    up.close()
