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
import warnings
from pathlib import Path

import comm
import numpy as np
import pytest

import plasmonwidgets as pw
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


def tiny_hspy(path: Path, seed: int = 0) -> bytes:
    """Write a real (tiny) HyperSpy EELS SI file and return its bytes: a file the loader's
    header check accepts, so an upload of it is listed."""
    import hyperspy.api as hs

    data = np.random.default_rng(seed).random((4, 4, 8)).astype("float32")
    signal = hs.signals.Signal1D(data)
    signal.axes_manager[-1].units = "eV"
    signal.save(path, overwrite=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def hspy_bytes(tmp_path_factory) -> bytes:
    return tiny_hspy(tmp_path_factory.mktemp("tiny") / "tiny.hspy")


@pytest.fixture(scope="module")
def other_hspy_bytes(tmp_path_factory) -> bytes:
    return tiny_hspy(tmp_path_factory.mktemp("tiny") / "other.hspy", seed=1)


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


def test_same_name_twice_does_not_overwrite(chooser, hspy_bytes, other_hspy_bytes):
    first = send_file(chooser.upload, "a", "scan.hspy", hspy_bytes, chunk=10_000)[-1]
    second = send_file(chooser.upload, "b", "scan.hspy", other_hspy_bytes, chunk=7_000)[-1]
    assert (first["name"], second["name"]) == ("scan.hspy", "scan-1.hspy")
    assert [p.read_bytes() for p in chooser.uploaded] == [hspy_bytes, other_hspy_bytes]


@pytest.mark.parametrize("hostile, stored", [
    ("../../etc/passwd.hspy", "passwd.hspy"),
    ("/etc/passwd.hspy", "passwd.hspy"),
    ("C:\\Windows\\System32\\evil.hspy", "evil.hspy"),
    ("..\\..\\..\\boot.ini.hspy", "boot.ini.hspy"),
    ("/tmp/.hidden scan (1).hspy", "hidden_scan_1.hspy"),
])  # fmt: skip
def test_hostile_names_land_sanitised_inside_the_upload_folder(chooser, data_root, hostile, stored,
                                                               hspy_bytes):
    reply = send_file(chooser.upload, "h1", hostile, hspy_bytes, chunk=10_000)[-1]
    assert reply["type"] == "done" and reply["name"] == stored
    (path,) = chooser.uploaded
    assert path.name == stored and path.parent == chooser._upload_dir
    assert path.read_bytes() == hspy_bytes
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


def test_refusal_in_the_browser_shows_in_status_next_to_the_accepted_files(chooser, hspy_bytes):
    up = chooser.upload
    assert deliver(up, {"type": "refused", "batch": "sel1", "name": "huge.dm4",
                        "size": 3 * MIB}) is None  # nothing to answer
    expected = ("'huge.dm4' is 3.0 MB, over the 2 MB upload limit; put the file in the data "
                "folder instead")
    assert expected in shown(chooser) and is_alert(chooser)
    # a file accepted in the same selection is stored and selected; the refusal stays visible
    assert send_file(up, "ok1", "small.hspy", hspy_bytes, chunk=10_000,
                     batch="sel1")[-1]["type"] == "done"
    assert chooser.selected[0].name == "small.hspy"
    assert expected in shown(chooser)
    # the next selection starts with a clean slate
    send_file(up, "ok2", "next.hspy", hspy_bytes, chunk=10_000, batch="sel2")
    assert "Selected next.hspy" in shown(chooser) and not is_alert(chooser)
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
    assert not chooser.upload.enabled
    reply = deliver(chooser.upload, {"type": "start", "id": "d", "batch": "b", "name": "d.dm4",
                                     "size": 3})
    assert reply["message"] == "'d.dm4': uploads are switched off here"
    assert upload_files(chooser) == []


def test_empty_file_is_stored_at_start_then_refused_by_the_header_check(chooser):
    reply = deliver(chooser.upload, {"type": "start", "id": "z", "batch": "b", "name": "z.npz",
                                     "size": 0})
    assert reply == {"type": "done", "id": "z", "name": "z.npz", "size": 0}
    # an empty archive is nothing the loader could read: not listed, deleted, said so
    assert chooser.uploaded == [] and upload_files(chooser) == []
    assert "z.npz" in shown(chooser) and "the uploaded file was deleted" in shown(chooser)
    assert str(chooser._upload_dir) not in chooser.status.value and is_alert(chooser)


def test_an_upload_the_loader_would_refuse_is_never_listed(chooser, tmp_path):
    """Issue 13: a file refused by ``check_data_file`` (here an HDF5 file whose dataset
    lives in a server file, HDF5 external storage) is deleted, named as uploaded."""
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"server secret " * 64)
    crafted = tmp_path / "crafted.hspy"
    with h5py.File(crafted, "w") as f:
        f.create_dataset("data", shape=(16, 4, 2), dtype="float32",
                         external=[(str(secret), 0, 16 * 4 * 2 * 4)])
    replies = send_file(chooser.upload, "ext", "Nice scan.hspy", crafted.read_bytes(), chunk=MIB)
    assert replies[-1]["type"] == "done"  # stored, then checked
    assert chooser.uploaded == [] and upload_files(chooser) == []
    text = shown(chooser)
    assert "Nice scan.hspy" in text and "the uploaded file was deleted" in text, text
    assert str(tmp_path) not in text and "plasmonwidgets-upload-" not in text


def test_a_failing_listener_is_reported_not_raised(chooser, hspy_bytes):
    def broken(_path):
        raise RuntimeError("listing exploded")

    chooser.upload.on_file(broken)
    reply = send_file(chooser.upload, "f", "f.hspy", hspy_bytes, chunk=MIB)[-1]
    assert reply["type"] == "done"  # the file itself is stored
    assert shown(chooser) == "'f.hspy' was uploaded, but showing it failed: RuntimeError: listing exploded"


def test_too_many_open_transfers_are_refused(chooser):
    up = chooser.upload
    for i in range(4):
        assert deliver(up, {"type": "start", "id": f"p{i}", "batch": "b", "name": f"p{i}.dm4",
                            "size": 10})["type"] == "ack"
    reply = deliver(up, {"type": "start", "id": "p4", "batch": "b", "name": "p4.dm4", "size": 10})
    assert "4 uploads are already running" in reply["message"]
    assert len(upload_files(chooser)) == 4


def test_python_side_value_is_stored_like_an_upload_and_cleared(chooser, hspy_bytes):
    chooser.upload.value = ({"name": "py.hspy", "content": memoryview(hspy_bytes)},
                            {"name": "evil.sh", "content": b"#!/bin/sh"})
    assert chooser.upload.value == ()
    assert [p.name for p in chooser.uploaded] == ["py.hspy"]
    assert chooser.selected[0].read_bytes() == hspy_bytes
    assert "'evil.sh' is not a supported file type" in shown(chooser)


def test_kernel_words_the_refusal_as_the_page_does():
    """tests/js/upload.test.mjs checks the page's tooLargeText against the same file."""
    golden = json.loads((Path(__file__).parents[1] / "js" / "too_large_messages.json").read_text())
    assert golden["cases"]
    for c in golden["cases"]:
        assert too_large_message(c["name"], c["size"], c["max_bytes"], c["hint"]) == c["text"]


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


def page_update(widget, state: dict) -> None:
    """Deliver a widget ``update`` message as a page (or a script posing as one) sends it."""
    widget.comm.handle_msg({
        "content": {"comm_id": widget.comm.comm_id,
                    "data": {"method": "update", "state": state, "buffer_paths": []}},
        "buffers": [],
    })  # fmt: skip


def test_the_page_cannot_relax_the_limit_or_switch_uploads_on(tmp_path, caplog):
    """Issue 13: ``update {max_bytes: 1e9, disabled: false}`` from the page changes nothing."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    up = ChunkedUpload(destination=lambda name, size: folder / name, max_bytes=1024)
    with caplog.at_level(logging.WARNING):
        page_update(up, {"max_bytes": 1e9, "disabled": False, "chunk_bytes": 9 * MIB})
    assert up.limit_bytes == up.max_bytes == 1024 and up.enabled and up.chunk_bytes == MIB
    assert any("ignored the page's update" in r.getMessage() for r in caplog.records)

    # announcing the real size is refused at the start: no file is created
    reply = deliver(up, {"type": "start", "id": "big", "batch": "b", "name": "big.dm4",
                         "size": 1024 + 5000})
    assert reply["type"] == "error" and "over the 0.000976562 MB upload limit" in reply["message"]
    assert list(folder.iterdir()) == []

    # announcing a small size and sending 5000 B more: cut off, partial file removed
    deliver(up, {"type": "start", "id": "sly", "batch": "b", "name": "sly.dm4", "size": 1024})
    assert deliver(up, {"type": "chunk", "id": "sly", "offset": 0}, [b"x" * 1000])["type"] == "ack"
    reply = deliver(up, {"type": "chunk", "id": "sly", "offset": 1000}, [b"x" * 5024])
    assert reply["type"] == "error" and "upload limit" in reply["message"]
    assert list(folder.iterdir()) == [] and up.in_progress == {}

    # switched off by the kernel: the page switching it back on is ignored as well
    up.disabled = True
    page_update(up, {"disabled": False})
    assert up.disabled and not up.enabled
    reply = deliver(up, {"type": "start", "id": "off", "batch": "b", "name": "off.dm4", "size": 3})
    assert reply["message"] == "'off.dm4': uploads are switched off here"
    up.close()


def test_python_code_still_configures_the_upload(tmp_path):
    up = ChunkedUpload(destination=lambda name, size: tmp_path / name, max_bytes=10)
    up.limit_bytes = 20
    assert up.max_bytes == 20 and up.limit_bytes == 20
    up.enabled = False
    assert up.disabled
    up.close()
