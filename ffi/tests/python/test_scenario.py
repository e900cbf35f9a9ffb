"""The multi-role scenario through the generated Python bindings against a real server: an
inspector reports a case with a photo offline and syncs when the server is back; a grid chief
accepts and resolves it; a citizen submits a 随手拍 report; an inspector patrols and a hazard
answer becomes a case; a mediator keeps a file offline. Errors arrive as the right exception
types, observers are called, and a panic inside Rust is an exception, not a crash."""

import os
import struct
import threading
import zlib

import pytest

import gridlink as g
from conftest import ROOT, open_app

GRID = "320509001001-01"


def camera(n):
    """A camera photo. Each test takes its own: the same bytes are the same photo (by hash)."""
    with open(os.path.join(ROOT, "fixtures", "photos", f"orientation-{n}.jpg"), "rb") as f:
        return f.read()


def drawn(seed, width=320, height=240):
    """A PNG of its own for tests beyond the four camera photos: a gradient keyed by seed."""
    rows = b"".join(
        b"\x00" + b"".join(bytes(((x + seed) % 256, (y * 3) % 256, (seed * 53) % 256))
                            for x in range(width))
        for y in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PLENTY = 50 * 1024**3  # free space the OS reports


@pytest.fixture(scope="module")
def inspector(server, workdir):
    app, config = open_app(workdir, server, "inspector")
    session = app.enroll(server.code("insp-0001"))
    assert session.role == g.Role.GRID_INSPECTOR
    assert session.user_id == "insp-0001"
    assert f"grid:{GRID}" in session.scopes
    summary = app.sync(None)
    assert summary.docs_received > 0
    return app


@pytest.fixture(scope="module")
def spot(inspector):
    """A point in the inspector's grid: the first address of the patrol list."""
    first = inspector.patrol_list(None, 30)[0]
    point = inspector.address(first.code).details.point
    return g.Location(point=point, accuracy_m=8.0)


def case_query(**kw):
    return g.CaseListQuery(**kw)


def test_offline_report_with_photo_reaches_the_chief_who_handles_it(server, workdir, inspector, spot):
    server.stop()  # the inspector walks out of coverage
    try:
        case_id = g.new_id()
        photo = inspector.capture_photo(case_id, camera(6), spot, PLENTY)
        assert photo.state == g.PhotoState.PROCESSED
        assert photo.width <= 1600 and photo.height <= 1600
        case = inspector.report_case(g.NewCaseInput(
            id=case_id, category=g.Category.SANITATION, title="河道漂浮垃圾",
            description="桥下一片漂浮物", location=spot, photos=[photo.hash]))
        assert case.status == g.Status.REPORTED and case.grid_id == GRID
        assert case.events[0].actor == "insp-0001"
        with pytest.raises(g.ApiError.Network):
            inspector.sync(None)
        assert inspector.unsent_count() >= 1
        # A retried tap is the same case, not a second one.
        again = inspector.report_case(g.NewCaseInput(
            id=case_id, category=g.Category.SANITATION, title="河道漂浮垃圾",
            description="桥下一片漂浮物", location=spot, photos=[photo.hash]))
        assert again.id == case_id
    finally:
        server.start()

    summary = inspector.sync(None)
    assert summary.docs_accepted >= 1 and summary.docs_rejected == 0
    assert summary.docs_deferred == 0
    assert summary.photos_uploaded == 1
    assert inspector.unsent_count() == 0
    # Nothing refused, nothing waiting: the "needs attention" lists are empty.
    assert inspector.rejected_edits() == [] and inspector.rejected_items() == []
    assert [p.state for p in inspector.photos_of(case_id)] == [g.PhotoState.UPLOADED]

    chief, _ = open_app(workdir, server, "chief")
    assert chief.enroll(server.code("chief-0001")).role == g.Role.GRID_CHIEF
    chief.sync(None)
    page = chief.list_cases(case_query(open_only=True, grid_ids=[GRID], text="漂浮"))
    assert case_id in [c.id for c in page.items]
    case = chief.record(case_id, g.EventKind.ACCEPTED(assignee=None, due_at_ms=None), spot)
    assert case.status == g.Status.ACCEPTED
    case = chief.record(case_id, g.EventKind.RESOLVED_IN_GRID(note="已组织打捞"), spot)
    assert case.solved_level == g.Level.GRID
    assert chief.sync(None).docs_rejected == 0
    thumb = chief.fetch_photo(photo.hash, True)
    assert thumb[:2] == b"\xff\xd8"

    inspector.sync(None)
    seen = inspector.case(case_id)
    assert seen.status == case.status
    steps = (g.EventKind.REPORTED, g.EventKind.ACCEPTED, g.EventKind.RESOLVED_IN_GRID)
    assert all(isinstance(e.kind, step) for e, step in zip(seen.events, steps))
    assert len(seen.events) >= 3
    assert seen.events[1].actor == "chief-0001"


def test_a_citizen_reports_and_sees_the_report_placed(server, workdir, spot):
    citizen, _ = open_app(workdir, server, "citizen")
    session = citizen.register_citizen(None, None)
    assert session.role == g.Role.CITIZEN
    report_id = g.new_id()
    snap = citizen.capture_photo(report_id, camera(3), spot, PLENTY)
    report = citizen.submit_citizen_report(
        report_id, g.Category.SANITATION, "垃圾桶满溢无人清运", spot, [snap.hash])
    assert report.state == g.CitizenReportState.PENDING
    summary = citizen.sync(None)
    assert summary.reports_submitted == 1 and summary.reports_refused == 0
    assert summary.photos_uploaded == 1
    mine = {r.id: r for r in citizen.my_reports()}
    assert mine[report_id].state == g.CitizenReportState.SUBMITTED
    assert mine[report_id].grid_id == GRID
    # Citizens report through 随手拍 only.
    with pytest.raises(g.ApiError.NotAllowed):
        citizen.report_case(g.NewCaseInput(
            id=g.new_id(), category=g.Category.OTHER, title="x", location=spot))


def test_a_hazard_answer_on_patrol_opens_a_case(inspector, spot):
    templates = {t.id: t for t in inspector.templates()}
    assert "household" in templates
    item = inspector.patrol_list(None, 30)[0]
    address = inspector.address(item.code)
    here = g.Location(point=address.details.point, accuracy_m=5.0)
    with pytest.raises(g.ApiError.Validation):
        inspector.start_visit(g.new_id(), item.code, "household", None, None)
    visit_id = g.new_id()
    visit = inspector.start_visit(visit_id, item.code, "household", here, None)
    assert visit.check_in.off_site is False
    assert visit.template.version == templates["household"].version
    with pytest.raises(g.ApiError.Validation) as bad:
        inspector.answer_visit(visit_id, "no_such_item", g.Answer.YES_NO(True), here)
    assert "no_such_item" in str(bad.value)
    outcome = inspector.answer_visit(visit_id, "ebike_indoor", g.Answer.YES_NO(True), here)
    assert outcome.hazard_case is not None
    assert outcome.hazard_case.category == g.Category.FIRE_HAZARD
    assert outcome.hazard_case.address_id == item.code
    assert [h.item_id for h in outcome.visit.hazard_cases] == ["ebike_indoor"]
    assert inspector.sync(None).docs_rejected == 0


def test_a_mediator_keeps_a_file_offline_and_the_ladder_is_checked(server, workdir, spot):
    mediator, _ = open_app(workdir, server, "mediator")
    assert mediator.enroll(server.code("med-0001")).role == g.Role.MEDIATOR
    file_id = g.new_id()
    details = g.MediationDetails(
        file_id=file_id, grid_id=GRID, dispute_type=g.DisputeType.NEIGHBOUR,
        summary="楼上漏水引发的邻里纠纷",
        parties=[g.Party(name="王建国", side=g.Side.APPLICANT, id_number=None, phone="13812341234"),
                 g.Party(name="李秀英", side=g.Side.RESPONDENT, id_number=None, phone=None)],
        team=g.Team(inspector="insp-0001", mediator="med-0001", legal_adviser=None, judge=None),
        opened_at=g.Rung.GRID, case_id=None)
    opened = mediator.open_mediation(details, spot)
    assert opened.state.rung == g.Rung.GRID
    with pytest.raises(g.ApiError.Validation):
        mediator.record_mediation(
            file_id, g.MediationStep.CONFIRMATION_REQUESTED(court="吴江区人民法院", at_ms=0), spot)
    with pytest.raises(g.ApiError.Validation):
        mediator.record_mediation(file_id, g.MediationStep.ESCALATED(to=g.Rung.TOWN, reason=""), spot)
    f = mediator.record_mediation(file_id, g.MediationStep.SESSION(
        at_ms=1_780_000_000_000, place="村委会调解室", attendees=["王建国", "李秀英"], notes="双方陈述"), spot)
    assert f.state.sessions == 1 and len(f.steps) == 1
    assert mediator.sync(None).docs_rejected == 0
    assert file_id in [m.file_id for m in mediator.mediation_files()]


def test_errors_arrive_as_typed_exceptions_without_personal_data(server, workdir, inspector, spot):
    case = inspector.list_cases(case_query(reported_by_me=True)).items[0]
    with pytest.raises(g.ApiError.NotAllowed):
        inspector.record(case.id, g.EventKind.DISPATCHED(
            target=g.DispatchTarget.DEPARTMENT(code="dept-env", name="区生态环境局"),
            due_at_ms=None, note=""), spot)
    with pytest.raises(g.ApiError.NotFound):
        inspector.case(g.new_id())
    with pytest.raises(g.ApiError.Validation):
        inspector.report_case(g.NewCaseInput(
            id=g.new_id(), category=g.Category.OTHER, title="   ", location=spot))
    with pytest.raises(g.ApiError.Validation):
        inspector.list_cases(case_query(after="not a cursor"))
    # ID numbers with a wrong check digit, or a birth date in the future: refused, and the
    # message repeats neither the number nor the date.
    code = inspector.patrol_list(None, 30)[0].code
    for bad_id, secret in (("32050919800101123X", "19800101123X"), ("320509209901011234", "20990101")):
        with pytest.raises(g.ApiError.Validation) as e:
            inspector.change_address(code, [g.AddressChange.PERSON_ADDED(
                person_id=g.new_id(),
                person=g.Person(name="赵六", id_number=bad_id, phone=None,
                                residency=g.Residency.REGISTERED_RESIDENT, house_id=None, moved_in=None))], spot)
        assert secret not in str(e.value), str(e.value)
        assert "赵六" not in str(e.value)
    # A made-up enrollment code is refused by the server, and says so.
    other, _ = open_app(workdir, server, "stranger")
    with pytest.raises(g.ApiError.Rejected) as refused:
        other.enroll("NOT-A-CODE")
    assert refused.value.code == "forbidden"
    # Another user cannot sign in over a signed-in phone.
    with pytest.raises(g.ApiError.NotAllowed):
        inspector.enroll(server.code("insp-0002"))
    # Signing out with work not yet on the server is refused.
    pending_id = g.new_id()
    inspector.report_case(g.NewCaseInput(
        id=pending_id, category=g.Category.OTHER, title="待同步", location=spot))
    with pytest.raises(g.ApiError.NotAllowed):
        inspector.sign_out(False)
    inspector.sync(None)


class SyncWatcher(g.SyncObserver):
    def __init__(self):
        self.progress_calls = []
        self.retries = []
        self.summary = None
        self.error = None
        self.done = threading.Event()

    def progress(self, progress):
        self.progress_calls.append(progress)

    def retrying(self, attempt, delay_ms, message):
        self.retries.append((attempt, delay_ms, message))

    def finished(self, summary):
        self.summary = summary
        self.done.set()

    def failed(self, error):
        self.error = error
        self.done.set()


class PhotoWatcher(g.PhotoQueueObserver):
    def __init__(self):
        self.changes = []

    def changed(self, photo):
        self.changes.append(photo)


def test_observers_hear_progress_photos_and_failures(server, workdir, inspector, spot):
    photos = PhotoWatcher()
    inspector.set_photo_observer(photos)
    case_id = g.new_id()
    snap = inspector.capture_photo(case_id, camera(8), spot, PLENTY)
    inspector.report_case(g.NewCaseInput(
        id=case_id, category=g.Category.FIRE_HAZARD, title="楼道堆放杂物", location=spot,
        photos=[snap.hash]))
    watcher = SyncWatcher()
    inspector.start_sync(watcher)  # returns at once; the library's network thread syncs
    assert watcher.done.wait(120), "the sync did not end"
    assert watcher.error is None, watcher.error
    assert watcher.summary.docs_accepted >= 1
    assert len(watcher.progress_calls) >= 1
    assert any(p.hash == snap.hash and p.state == g.PhotoState.UPLOADED for p in photos.changes)
    inspector.set_photo_observer(None)

    lonely, _ = open_app(workdir, server, "not-signed-in")
    failed = SyncWatcher()
    lonely.start_sync(failed)
    assert failed.done.wait(30)
    assert isinstance(failed.error, g.ApiError.SignInAgain)


def test_the_grid_map_finds_the_grid_and_converts_for_chinese_maps(inspector, spot):
    assert inspector.refresh_grids() > 0
    assert inspector.grid_at(spot.point).id == GRID
    assert inspector.grid_at(g.LatLon(lat=0.0, lon=0.0)) is None
    gcj = g.wgs84_to_gcj02(spot.point)
    assert 0.0001 < abs(gcj.lon - spot.point.lon) < 0.01
    back = g.gcj02_to_wgs84(gcj)
    assert abs(back.lat - spot.point.lat) < 1e-5 and abs(back.lon - spot.point.lon) < 1e-5


def test_a_reopened_app_is_still_signed_in(server, workdir):
    app, config = open_app(workdir, server, "reopen")
    app.enroll(server.code("insp-0002"))
    del app
    again = g.FieldApp.open(config)
    session = again.session()
    assert session is not None and session.user_id == "insp-0002"
    assert again.sync(None).docs_received > 0
    # A photo not yet uploaded is unsent work: sign-out refuses until told to discard it.
    again.capture_photo(g.new_id(), camera(1), None, PLENTY)
    assert again.unsent_count() == 1
    with pytest.raises(g.ApiError.NotAllowed):
        again.sign_out(False)
    again.sign_out(True)
    assert again.session() is None
    assert not os.path.exists(config.database_path)
    # Another user signs in on the same phone (a fresh device id), and sees their own data.
    other = again.enroll(server.code("chief-0001"))
    assert other.user_id == "chief-0001" and other.device_id != config.device_id
    assert again.sync(None).docs_received > 0
    assert again.photo_queue() == []


def test_a_photo_for_a_report_never_saved_is_listed_discardable_and_blocks_nothing(server, workdir, spot):
    # No grace period: a photo whose report is not saved is orphaned at once.
    app, _ = open_app(workdir, server, "orphan", orphan_photo_grace_s=0)
    app.enroll(server.code("insp-0003"))
    app.sync(None)
    # The user took a photo, then left the report screen (or the app was killed).
    abandoned = app.capture_photo(g.new_id(), drawn(1), spot, PLENTY)
    assert abandoned.orphaned
    assert app.unsent_count() == 0
    assert [p.hash for p in app.orphaned_photos()] == [abandoned.hash]
    # A photo of a saved report is not orphaned, and cannot be discarded.
    case_id = g.new_id()
    kept = app.capture_photo(case_id, drawn(2), spot, PLENTY)
    app.report_case(g.NewCaseInput(
        id=case_id, category=g.Category.SANITATION, title="河道漂浮垃圾",
        description="桥下一片漂浮物", location=spot, photos=[kept.hash]))
    assert not [p for p in app.photos_of(case_id) if p.orphaned]
    with pytest.raises(g.ApiError.NotAllowed):
        app.discard_photo(kept.hash)
    app.discard_photo(abandoned.hash)
    assert app.orphaned_photos() == []
    with pytest.raises(g.ApiError.NotFound):
        app.discard_photo(abandoned.hash)
    # The report and its photo still go; afterwards nothing is unsent and sign-out is allowed.
    app.sync(None)
    assert app.unsent_count() == 0
    app.sign_out(False)


def test_a_damaged_sign_in_record_is_set_aside_not_opened(server, workdir):
    app, config = open_app(workdir, server, "damaged")
    app.enroll(server.code("med-0001"))
    del app
    with open(config.database_path + ".session.json", "w") as f:
        f.write("{not json")
    reopened = g.FieldApp.open(config)
    assert reopened.session() is None
    assert not os.path.exists(config.database_path)
    aside = [n for n in os.listdir(os.path.dirname(config.database_path)) if ".unreadable-" in n]
    assert any(n.startswith("gridlink.sqlite.unreadable-") for n in aside), aside


class Throwing(g.SyncObserver):
    def progress(self, progress):
        raise RuntimeError("an app bug")

    def retrying(self, attempt, delay_ms, message):
        raise RuntimeError("an app bug")

    def finished(self, summary):
        raise RuntimeError("an app bug")

    def failed(self, error):
        raise RuntimeError("an app bug")


def test_an_observer_that_throws_does_not_stop_later_syncs(inspector):
    inspector.start_sync(Throwing())
    after = SyncWatcher()
    inspector.start_sync(after)
    assert after.done.wait(120), "the network thread stopped"
    assert after.error is None and after.summary is not None


def test_a_panic_in_rust_is_an_exception_not_a_crash():
    with pytest.raises(g.InternalError) as e:
        g.check_panic_boundary("测试 panic")
    assert "测试 panic" in str(e.value)
    assert len(g.new_id()) == 36  # the library still works
