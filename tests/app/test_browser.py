"""The explorer page in a real browser (headless Debian chromium via pytest-playwright) against a
real uvicorn server on the tiny published version (tests/app/conftest.py).

The tests also take the screenshots of docs/explorer.md (explorer_*.png, 1200x800): into pytest's
temporary folder, or into docs/img when SKYSIFT_DOCS_SCREENSHOTS=1 (so `make test` leaves the
working tree clean; refresh the docs with `SKYSIFT_DOCS_SCREENSHOTS=1 make test`).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, Route, expect

from indexer.store import IndexedSurvey

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
TIMEOUT_MS = 20_000  # generous: two CPU cores shared with other jobs
CARDS = "#results .card"


@pytest.fixture(scope="module")
def store(tiny_artifacts: Path) -> IndexedSurvey:
    return IndexedSurvey.open_current(tiny_artifacts)


@pytest.fixture
def page(page: Page) -> Page:
    """pytest-playwright's page, with waits sized for two busy cores."""
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def shots_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("SKYSIFT_DOCS_SCREENSHOTS") == "1":
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


def shot(page: Page, name: str, folder: Path) -> None:
    """A docs screenshot, quantised to 256 colours (a third of the bytes; the page is flat colours)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    png = Image.open(io.BytesIO(page.screenshot()))
    png.convert("RGB").quantize(256).save(folder / f"explorer_{name}.png", optimize=True)
    assert (folder / f"explorer_{name}.png").stat().st_size > 1000


def wait_ready(page: Page) -> None:
    page.wait_for_function("() => window.__skysift && window.__skysift.ready")


def all_images_loaded(page: Page, selector: str) -> None:
    """Every <img> under selector finished loading with real pixels (scrolling each into view,
    since they are loading="lazy")."""
    for img in page.locator(f"{selector} img").all():
        img.scroll_into_view_if_needed()
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel + ' img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)", arg=selector)


def card_ids(page: Page, selector: str = CARDS) -> list[str]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.dataset.objectId)")


def test_chromium_is_installed(chromium_problem: str | None) -> None:
    """Fails (never skips) with the install command when Debian's chromium is missing."""
    assert chromium_problem is None, chromium_problem


def test_landing_page_shows_the_survey_and_objects_before_any_search(page: Page, store: IndexedSurvey,
                                                                    shots_dir: Path) -> None:
    """Issue #17: the page was blank until the first search."""
    searches: list[str] = []
    page.on("request", lambda req: searches.append(req.url) if "/similar" in req.url or "/search/" in req.url else None)
    page.goto("/")
    wait_ready(page)
    landing = page.locator("#landing")
    expect(landing).to_be_visible()
    expect(landing).to_contain_text(f"{len(store)} objects in the g, r, z bands at {store.pixel_scale_arcsec}″/px")
    ra, dec = np.asarray(store.catalog["ra"]), np.asarray(store.catalog["dec"])
    expect(landing.locator(".footprint")).to_contain_text(
        f"Footprint: RA {ra.min():.2f}°–{ra.max():.2f}°, Dec +{dec.min():.2f}°–+{dec.max():.2f}°")
    expect(landing.locator(".footprint")).to_contain_text(f"{len(store)} of {len(store)} objects have a sky position")
    cards = landing.locator(".grid .card")
    expect(cards).to_have_count(6)
    all_images_loaded(page, "#landing .grid")
    drawn = card_ids(page, "#landing .grid .card")
    assert len(set(drawn)) == 6 and all(store.row_of(i) >= 0 for i in drawn)
    assert not searches, "nothing is searched before the user asks"
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "landing", shots_dir)

    example = landing.locator(".example.id")
    expect(example).to_have_text(drawn[0])
    example.click()  # the example ID runs its search
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", drawn[0])
    expect(landing).to_be_hidden()
    page.go_back()  # back to the start: the landing view again, no stale results
    expect(landing).to_be_visible()
    expect(page.locator(CARDS)).to_have_count(0)
    landing.get_by_role("button", name="Draw others").click()
    page.wait_for_function("(ids) => [...document.querySelectorAll('#landing .card')].map(c => c.dataset.objectId)"
                           ".join() !== ids.join()", arg=drawn)
    expect(cards).to_have_count(6)


def test_search_by_id_shows_k_loaded_cutouts_and_a_detail_panel(page: Page, store: IndexedSurvey,
                                                                 shots_dir: Path) -> None:
    oid = str(store.catalog["object_id"][3])
    page.goto("/")
    wait_ready(page)
    page.get_by_label("k", exact=True).select_option("12")
    page.get_by_role("searchbox").fill(oid)
    page.get_by_role("searchbox").press("Enter")
    expect(page.locator(CARDS)).to_have_count(12)
    all_images_loaded(page, "#results")
    assert [i.get_attribute("loading") for i in page.locator(f"{CARDS} img").all()] == ["lazy"] * 12
    assert card_ids(page)[0] == oid and "query" in (page.locator(CARDS).first.get_attribute("class") or "")
    assert f"q={oid}" in page.url and "k=12" in page.url
    expect(page.locator(CARDS).nth(1)).to_contain_text("distance")
    page.locator(CARDS).first.scroll_into_view_if_needed()
    shot(page, "grid", shots_dir)

    second = card_ids(page)[1]
    page.locator(CARDS).nth(1).click()
    panel = page.get_by_role("dialog")
    expect(panel).to_be_visible()
    expect(panel.locator("#detail-title")).to_have_text(second)
    expect(panel.locator("#detail-table")).to_contain_text("anomaly_score")
    row = int(store.row_of(second))
    ra, dec = float(store.catalog["ra"][row]), float(store.catalog["dec"][row])
    viewer = panel.get_by_role("link", name="Legacy Survey viewer")
    assert viewer.get_attribute("href").startswith(f"https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}")
    assert panel.get_by_role("link", name="Download FITS").get_attribute("href") == f"/api/v1/cutouts/{second}.fits"
    page.wait_for_function("() => document.querySelector('#detail-img').naturalWidth > 0")
    shot(page, "detail", shots_dir)

    panel.get_by_role("button", name="Search from here").click()
    expect(panel).to_be_hidden()
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", second)
    assert f"q={second}" in page.url


def test_keyboard_moves_through_the_grid_searches_and_escape_closes(page: Page, store: IndexedSurvey) -> None:
    oid = str(store.catalog["object_id"][5])
    page.goto(f"/?q={oid}&k=6")
    expect(page.locator(CARDS)).to_have_count(6)
    page.locator(CARDS).first.focus()
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("() => document.activeElement.dataset.objectId")
    assert focused == card_ids(page)[1]
    page.keyboard.press("Space")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert page.evaluate("() => document.activeElement.dataset.objectId") == focused, "focus returns to the card"
    page.keyboard.press("Enter")
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", focused)
    page.go_back()  # the address is the search: back restores the previous one
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", oid)


def test_filters_requery_and_go_into_the_address(page: Page, store: IndexedSurvey) -> None:
    oid = str(store.catalog["object_id"][0])
    z = np.asarray(store.catalog["z"], float)
    z_max = float(np.round(np.median(z), 2))
    page.goto(f"/?q={oid}&k=24")
    expect(page.locator(CARDS)).to_have_count(24)
    page.get_by_label("to", exact=True).fill(str(z_max))
    page.wait_for_url(f"**z_max={z_max}**")
    page.wait_for_function("() => window.__skysift.marks.renders >= 2")
    expect(page.locator(CARDS)).to_have_count(24)
    ids = card_ids(page)
    assert all(z[store.row_of(i)] <= z_max + 1e-9 for i in ids)


def test_filtered_summary_states_the_filters_and_an_empty_result_says_how_to_widen_it(
        page: Page, store: IndexedSurvey) -> None:
    """Issue #17: with filters on, the summary said "12 objects most similar to X" though X was not
    among them, and an empty filtered result showed no message."""
    z = np.asarray(store.catalog["z"], float)
    row = int(np.argmax(z))  # the highest redshift: it cannot pass z <= median
    oid = str(store.catalog["object_id"][row])
    z_max = float(np.round(np.median(z), 2))
    page.goto(f"/?q={oid}&k=6&z_max={z_max}")
    expect(page.locator(CARDS)).to_have_count(6)
    assert oid not in card_ids(page)
    expect(page.locator("#summary")).to_have_text(
        f"6 objects with z ≤ {z_max:g} most similar to {oid} ({oid} itself does not pass the filters):")

    page.get_by_label("mag ≤", exact=True).fill("-5")  # brighter than any object of the survey
    expect(page.locator("#summary .empty")).to_contain_text(f"No object in the survey has z ≤ {z_max:g} and mag ≤ -5.")
    expect(page.locator("#summary .empty")).to_contain_text("Widen the redshift range")
    expect(page.locator(CARDS)).to_have_count(0)
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^0 results"))
    page.locator("#summary .empty").get_by_role("button", name="Clear the filters").click()
    expect(page.locator(CARDS)).to_have_count(6)
    expect(page.locator("#summary")).to_have_text(f"6 objects most similar to {oid}:")
    assert "z_max" not in page.url


def test_cards_link_outside_cutouts_take_a_stretch_and_result_lists_download(page: Page, store: IndexedSurvey,
                                                                             live_server: str) -> None:
    """Issue #17: cards linked nowhere outside; no stretch control; no download of a result list."""
    oid = str(store.catalog["object_id"][4])

    def drop_position(route) -> None:  # the second card as an object ingested without ra/dec
        body = route.fetch().json()
        body["neighbours"][1]["ra"] = body["neighbours"][1]["dec"] = None
        route.fulfill(json=body)

    page.route("**/similar?*", drop_position)
    page.goto(f"/?q={oid}&k=6&z_max=0.6")
    expect(page.locator(CARDS)).to_have_count(6)
    ids = card_ids(page)
    unplaced = ids[1]
    for i, card in zip(ids, page.locator(CARDS).all(), strict=True):
        links = card.locator(".links a")
        if i == unplaced:
            expect(links).to_have_count(0)
            continue
        row = store.row_of(i)
        ra, dec = float(store.catalog["ra"][row]), float(store.catalog["dec"][row])
        assert links.evaluate_all("els => els.map(a => a.textContent)") == ["Legacy Survey", "SIMBAD", "NED"]
        hrefs = links.evaluate_all("els => els.map(a => a.href)")
        assert hrefs[0].startswith(f"https://www.legacysurvey.org/viewer?ra={ra:.6f}&dec={dec:.6f}")
        assert hrefs[1] == ("https://simbad.cds.unistra.fr/simbad/sim-coo?"
                            f"Coord={ra:.6f}+{dec:.6f}&CooFrame=ICRS&Radius=5&Radius.unit=arcsec")
        assert f"lon={ra:.6f}d&lat={dec:.6f}d" in hrefs[2] and hrefs[2].startswith("https://ned.ipac.caltech.edu/")
        assert links.evaluate_all("els => els.every(a => a.target === '_blank' && a.rel.includes('noopener'))")

    # a stretch for every cutout on the page, kept in the browser
    page.get_by_label("stretch").select_option("0.1")
    page.wait_for_function("() => [...document.querySelectorAll('#results img')]"
                           ".every(i => i.src.includes('stretch=0.1'))")
    all_images_loaded(page, "#results")
    soft = page.request.get(f"{live_server}/api/v1/cutouts/{oid}.png?size=128&stretch=0.1").body()
    assert soft != page.request.get(f"{live_server}/api/v1/cutouts/{oid}.png?size=128").body()
    page.locator(CARDS).nth(1).click()
    expect(page.locator("#detail-img")).to_have_attribute("src", re.compile(r"stretch=0\.1"))
    page.get_by_role("button", name="Close details").click()

    # the result list as CSV and VOTable: the same query with format=
    csv_link = page.locator("#downloads").get_by_role("link", name="CSV")
    expect(page.locator("#downloads")).to_contain_text("Download these 6 results")
    href = csv_link.get_attribute("href")
    assert href == f"/api/v1/objects/{oid}/similar?k=6&z_max=0.6&format=csv"
    with page.expect_download() as dl:
        csv_link.click()
    assert dl.value.suggested_filename == f"similar-{store.row_of(oid)}.csv"  # the service's name for it
    rows = Path(dl.value.path()).read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ids
    votable = page.locator("#downloads").get_by_role("link", name="VOTable").get_attribute("href")
    answer = page.request.get(f"{live_server}{votable}")
    assert answer.ok and answer.headers["content-type"].startswith("application/x-votable+xml")

    page.get_by_role("tab", name="Unusual objects").click()  # a ranking page downloads too, filtered the same
    link = page.locator("#panel-anomalies .downloads").get_by_role("link", name="CSV")
    expect(link).to_have_attribute("href", "/api/v1/rankings/anomalies?limit=24&offset=0&z_max=0.6&format=csv")
    ranked = page.request.get(f"{live_server}{link.get_attribute('href')}").text().splitlines()
    expect(page.locator("#panel-anomalies .grid .card")).to_have_count(24)
    assert len(ranked) == 25 and ranked[1].split(",")[0] == card_ids(page, "#panel-anomalies .grid .card")[0]


def test_search_by_sexagesimal_position_finds_the_object(page: Page, store: IndexedSurvey) -> None:
    from astropy.coordinates import SkyCoord

    row = 11
    oid = str(store.catalog["object_id"][row])
    pos = SkyCoord(store.catalog["ra"][row], store.catalog["dec"][row], unit="deg")
    text = pos.to_string("hmsdms", sep=":", precision=2)  # e.g. "10:00:24.00 +02:12:00.00"
    page.goto("/")
    wait_ready(page)
    page.get_by_role("searchbox").fill(text)
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.locator(CARDS)).to_have_count(12)
    assert card_ids(page)[0] == oid
    summary = page.locator("#summary").inner_text()
    ra_shown, dec_shown = (float(v) for v in re.findall(r"(?:RA|Dec) (-?[\d.]+)°", summary))
    assert (ra_shown, dec_shown) == pytest.approx((pos.ra.deg, pos.dec.deg), abs=2e-5)  # parsed as hours, degrees
    assert f"{oid}, " in summary and "″ away" in summary


def test_uploaded_fits_finds_its_own_object(page: Page, store: IndexedSurvey, tmp_path: Path) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    row = 42
    oid = str(store.catalog["object_id"][row])
    pixels = np.asarray(store.images([row])[0], np.float32)  # (C, H, W)
    _, h, w = pixels.shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(store.catalog["ra"][row]), float(store.catalog["dec"][row])]
    wcs.wcs.crpix = [(w + 1) / 2, (h + 1) / 2]
    wcs.wcs.cdelt = [-store.pixel_scale_arcsec / 3600, store.pixel_scale_arcsec / 3600]
    header = wcs.to_header()
    header["BANDS"] = ",".join(store.bands)
    path = tmp_path / "my_galaxy.fits"
    fits.PrimaryHDU(pixels, header=header).writeto(path)

    page.goto("/")
    wait_ready(page)
    page.locator("#file").set_input_files(str(path))
    expect(page.locator(CARDS)).to_have_count(12)
    assert oid in card_ids(page)[:3], f"{oid} not among the first results {card_ids(page)[:3]}"
    expect(page.locator("#summary")).to_contain_text("my_galaxy.fits")
    assert "q=" not in page.url  # an upload cannot live in the address
    with page.expect_download() as dl:  # its result list downloads by posting the file again
        page.locator("#downloads").get_by_role("link", name="CSV").click()
    assert dl.value.suggested_filename == "similar-to-my_galaxy.fits.csv"
    rows = Path(dl.value.path()).read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == card_ids(page)

    # the same pixels as an NPY cube, dropped onto the page
    npy = io.BytesIO()
    np.save(npy, pixels)
    drop = page.evaluate_handle("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.npy", { type: "application/octet-stream" }));
        return dt;
    }""", base64.b64encode(npy.getvalue()).decode())
    page.dispatch_event("body", "dragover", {"dataTransfer": drop})
    expect(page.locator("#drop-overlay")).to_be_visible()
    page.dispatch_event("body", "drop", {"dataTransfer": drop})
    expect(page.locator("#summary")).to_contain_text("uploaded NPY “dropped.npy”")
    expect(page.locator("#drop-overlay")).to_be_hidden()
    assert oid in card_ids(page)[:3]


def test_votes_in_the_anomaly_tab_survive_a_reload(page: Page, live_server: str, shots_dir: Path) -> None:
    page.goto("/#anomalies")
    grid = "#panel-anomalies .grid"
    expect(page.locator(f"{grid} .card")).to_have_count(24)
    expect(page.get_by_role("tab", name="Unusual objects")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-anomalies .page-info")).to_contain_text("page 1 of 10")
    first = page.locator(f"{grid} .card").first
    oid = first.get_attribute("data-object-id")
    page.get_by_label("voter").fill("ada")
    page.get_by_label("voter").dispatch_event("change")
    first.get_by_role("button", name="Interesting").click()
    expect(first.get_by_role("button", name="Interesting")).to_have_attribute("aria-pressed", "true")
    first.get_by_role("button", name="Not a lens").click()
    expect(first.get_by_role("button", name="Not a lens")).to_have_attribute("aria-pressed", "true")

    page.reload()
    first = page.locator(f"{grid} .card").first
    expect(first).to_have_attribute("data-object-id", oid)
    expect(first.get_by_role("button", name="Interesting")).to_have_attribute("aria-pressed", "true")
    expect(first.get_by_role("button", name="Not a lens")).to_have_attribute("aria-pressed", "true")
    expect(first.locator(".vote-lens")).to_have_attribute("aria-pressed", "false")
    all_images_loaded(page, grid)
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "rankings", shots_dir)

    saved = page.request.get(f"{live_server}/api/v1/votes?object_id={oid}").json()
    assert {(v["label"], v["voter"]) for v in saved["items"]} >= {("interesting", "ada"), ("not_lens", "ada")}

    page.get_by_role("button", name="Next →").first.click()
    expect(page.locator("#panel-anomalies .page-info")).to_contain_text("page 2 of 10")
    assert page.url.endswith("#anomalies/2")
    page.get_by_role("tab", name="Lens candidates").click()
    expect(page.locator("#panel-lenses")).to_be_visible()


def test_the_artifact_tab_lists_the_broken_stamps_first_and_names_the_detector(page: Page,
                                                                               store: IndexedSurvey) -> None:
    page.goto("/#artifacts")
    grid = "#panel-artifacts .grid"
    expect(page.locator(f"{grid} .card")).to_have_count(24)
    expect(page.get_by_role("tab", name="Artifacts")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-artifacts .about")).to_contain_text("data quality from the pixels")
    first = page.locator(f"{grid} .card").first
    oid = first.get_attribute("data-object-id")
    row = store.row_of(oid)
    assert row == int(np.nanargmax(store.quality))  # the highest quality score comes first
    assert str(store.catalog["artifact_kind"][row]) != ""  # and it is one of the injected artifacts
    expect(first).to_contain_text(f"· {store.quality_flag[row]}")


def test_a_lens_vote_teaches_the_lens_tab_which_says_how_many_votes_it_learned_from(page: Page,
                                                                                    live_server: str) -> None:
    page.goto("/#anomalies")
    expect(page.locator("#panel-anomalies .grid .card")).to_have_count(24)
    oid = page.locator("#panel-anomalies .grid .card").nth(3).get_attribute("data-object-id")
    card = page.locator(f'#panel-anomalies .grid .card[data-object-id="{oid}"]')
    card.locator(".vote-lens").click()
    expect(card.locator(".vote-lens")).to_have_attribute("aria-pressed", "true")

    page.get_by_role("tab", name="Lens candidates").click()
    learned = page.locator("#panel-lenses .learned")
    expect(learned).to_be_hidden()
    page.locator("#panel-lenses").get_by_label("learn from the votes").check()
    # other tests share the server's votes: the page says what the service learned from
    body = page.request.get(f"{live_server}/api/v1/rankings/lenses?learn=true&limit=1").json()
    assert body["learned_from_votes"] >= 1
    expect(learned).to_contain_text(f"learned from {body['learned_from_votes']} vote")
    expect(learned).to_contain_text(f"(ranking {body['ranking_version']})")
    ids = page.locator("#panel-lenses .grid .card").evaluate_all("els => els.map(e => e.dataset.objectId)")
    assert oid in ids[:10]  # the one voted lens ranks near the top of the retrained list


def test_interesting_and_boring_votes_retrain_the_unusual_objects_tab_live(page: Page, live_server: str) -> None:
    """Issue #15: with "learn from the votes" on, the unusual-objects tab re-orders itself after each
    interesting / boring vote cast on its cards, shows the API's learned ranking and says how many
    votes it learned from: a card voted interesting joins the top, one voted boring leaves the page."""
    api = f"{live_server}/api/v1/rankings/anomalies?learn=true&limit=1000"
    page.goto("/#anomalies")
    panel = page.locator("#panel-anomalies")
    expect(panel.locator(".grid .card")).to_have_count(24)
    panel.get_by_label("learn from the votes").check()
    learned = panel.locator(".learned")
    n = page.request.get(api).json()["learned_from_votes"]  # other tests share the server's votes
    expect(learned).to_contain_text(f"learned from {n} vote")
    voted = {v["object_id"] for label in ("interesting", "boring") for v in page.request.get(
        f"{live_server}/api/v1/votes?label={label}&limit=1000").json()["items"]}
    before = card_ids(page, "#panel-anomalies .grid .card")
    liked = next(i for i in reversed(before) if i not in voted)
    panel.locator(f'.card[data-object-id="{liked}"] .vote-interesting').click()
    expect(learned).to_contain_text(f"learned from {n + 1} vote")
    order = [i["object_id"] for i in page.request.get(api).json()["items"]]
    assert card_ids(page, "#panel-anomalies .grid .card") == order[:24]
    assert order.index(liked) < before.index(liked)  # voted interesting: up with the others voted so
    disliked = next(i for i in card_ids(page, "#panel-anomalies .grid .card") if i not in voted and i != liked)
    panel.locator(f'.card[data-object-id="{disliked}"] .vote-boring').click()
    expect(learned).to_contain_text(f"learned from {n + 2} votes")
    order = [i["object_id"] for i in page.request.get(api).json()["items"]]
    assert card_ids(page, "#panel-anomalies .grid .card") == order[:24] and disliked not in order[:24]

    # a 0-5 relevance from the detail panel (Astronomaly's scale) teaches the tab too
    rated = next(i for i in order[30:] if i not in voted)
    page.goto(f"/?q={rated}&k=12")
    expect(page.locator(CARDS)).to_have_count(12)
    page.locator(CARDS).first.click()  # the object searched for
    dialog = page.get_by_role("dialog")
    expect(dialog.locator("#detail-title")).to_have_text(rated)
    dialog.get_by_label("Relevance").select_option("4")
    dialog.get_by_role("button", name="Rate").click()
    expect(dialog.locator(".relevance-mine")).to_have_text("you rated it 4")
    saved = page.request.get(f"{live_server}/api/v1/votes?object_id={rated}&label=relevance").json()["items"]
    assert [v["score"] for v in saved] == [4]
    body = page.request.get(api).json()
    assert body["learned_from_votes"] == n + 3
    assert {i["object_id"]: i["score"] for i in body["items"]}[rated] == pytest.approx(0.8)


def test_votes_on_lens_candidates_retrain_the_tab_live_and_the_filters_filter_it(page: Page, live_server: str,
                                                                                  store: IndexedSurvey) -> None:
    """Issue #15: with "learn from the votes" on, a Not-a-lens and a Lens vote on the lens tab's own
    cards each retrain the list in place: the count of votes it learned from goes up, the rejected
    candidate falls, the confirmed one rises, the cards are the API's learned ranking. The search
    bar's redshift filter then filters the ranking (page 1 of it, every card passing)."""
    api = f"{live_server}/api/v1/rankings/lenses?learn=true&limit=24"
    # the tiny version has no known lenses: one lens vote (another voter's) gives the score a start
    first = str(store.catalog["object_id"][11])
    assert page.request.post(f"{live_server}/api/v1/votes", data={"object_id": first, "label": "lens",
                                                                  "voter": "grace"}).status == 201
    page.goto("/#lenses")
    panel = page.locator("#panel-lenses")
    panel.get_by_label("learn from the votes").check()
    learned, cards = panel.locator(".learned"), panel.locator(".grid .card")
    n = page.request.get(api).json()["learned_from_votes"]
    expect(learned).to_contain_text(f"learned from {n} vote")
    expect(cards).to_have_count(24)
    before = card_ids(page, "#panel-lenses .grid .card")

    voted = {v["object_id"] for label in ("lens", "not_lens") for v in page.request.get(
        f"{live_server}/api/v1/votes?label={label}&limit=1000").json()["items"]}  # other tests' votes too

    def ranked() -> tuple[list[str], dict[str, float]]:  # the whole learned ranking, as the API has it now
        items = page.request.get(api.replace("limit=24", "limit=1000")).json()["items"]
        return [i["object_id"] for i in items], {i["object_id"]: i["score"] for i in items}

    order0, score0 = ranked()
    rejected = next(i for i in before[:6] if i not in voted)
    panel.locator(f'.card[data-object-id="{rejected}"] .vote-not_lens').click()
    expect(learned).to_contain_text(f"learned from {n + 1} votes")
    after_no = card_ids(page, "#panel-lenses .grid .card")
    order1, score1 = ranked()
    assert after_no == order1[:24] and order1 != order0  # the page shows the ranking as it changed
    assert score1[rejected] < score0[rejected]  # the candidate voted "not a lens" falls
    assert order1.index(rejected) >= order0.index(rejected)
    confirmed = next(i for i in after_no[12:] if i not in voted)
    panel.locator(f'.card[data-object-id="{confirmed}"] .vote-lens').click()
    expect(learned).to_contain_text(f"learned from {n + 2} votes")
    after_yes = card_ids(page, "#panel-lenses .grid .card")
    order2, score2 = ranked()
    assert after_yes == order2[:24] and order2 != order1
    assert score2[confirmed] > score1[confirmed] and order2.index(confirmed) < order1.index(confirmed)  # rises
    expect(panel.locator(f'.card[data-object-id="{confirmed}"] .vote-lens')).to_have_attribute("aria-pressed", "true")

    z = np.asarray(store.catalog["z"], float)
    z_max = float(np.round(np.median(z), 2))
    page.get_by_label("to", exact=True).fill(str(z_max))
    expect(panel.locator(".page-info")).to_contain_text(f"objects with z ≤ {z_max:g}")
    want = page.request.get(f"{api}&z_max={z_max}").json()
    assert 0 < want["total"] < page.request.get(api).json()["total"]
    expect(panel.locator(".page-info")).to_contain_text(f"{want['total']} objects with z ≤ {z_max:g}")
    ids = card_ids(page, "#panel-lenses .grid .card")
    assert ids == [i["object_id"] for i in want["items"]] and all(z[store.row_of(i)] <= z_max for i in ids)
    assert f"z_max={z_max}" in panel.locator(".downloads a.csv").get_attribute("href")
    expect(page.get_by_role("tab", name="Lens candidates")).to_have_attribute("aria-selected", "true")
    page.locator("#clear-filters").click()
    expect(panel.locator(".page-info")).not_to_contain_text("with z")

    # a lens vote cast on another tab: the learned tab has learned from it when shown again
    page.get_by_role("tab", name="Unusual objects").click()
    expect(page.locator("#panel-anomalies .grid .card")).to_have_count(24)
    other = next(i for i in card_ids(page, "#panel-anomalies .grid .card") if i not in voted | {rejected, confirmed})
    page.locator(f'#panel-anomalies .card[data-object-id="{other}"] .vote-lens').click()
    expect(page.locator(f'#panel-anomalies .card[data-object-id="{other}"] .vote-lens')).to_have_attribute(
        "aria-pressed", "true")
    page.get_by_role("tab", name="Lens candidates").click()
    expect(learned).to_contain_text(f"learned from {n + 3} votes")


def test_cards_picked_on_a_ranking_search_for_more_like_these(page: Page, live_server: str) -> None:
    page.goto("/#anomalies")
    cards = page.locator("#panel-anomalies .grid .card")
    expect(cards).to_have_count(24)
    ids = cards.evaluate_all("els => els.map(e => e.dataset.objectId)")
    like, unlike = ids[2:4], ids[5:6]
    bar = page.get_by_role("region", name="selected examples")
    expect(bar).to_be_hidden()
    for oid in like:
        page.locator(f'#panel-anomalies .card[data-object-id="{oid}"] .pick-like').click()
    page.locator(f'#panel-anomalies .card[data-object-id="{unlike[0]}"] .pick-unlike').click()
    expect(bar).to_contain_text("2 to look like · 1 to look unlike")
    # a second click takes a pick back, and picking the other way moves it
    page.locator(f'#panel-anomalies .card[data-object-id="{like[0]}"] .pick-unlike').click()
    expect(bar).to_contain_text("1 to look like · 2 to look unlike")
    page.locator(f'#panel-anomalies .card[data-object-id="{like[0]}"] .pick-like').click()
    expect(bar).to_contain_text("2 to look like · 1 to look unlike")

    bar.get_by_role("button", name="Search: more like these").click()
    expect(page.get_by_role("tab", name="Similar objects")).to_have_attribute("aria-selected", "true")
    # like[0] was taken back and picked again: the selection lists it last
    expect(page.locator("#summary")).to_contain_text(f"most like {like[1]}, {like[0]} and least like {unlike[0]}")
    want = page.request.post(f"{live_server}/api/v1/search/examples",
                             data={"positive": like, "negative": unlike, "k": 12}).json()
    expect(page.locator(CARDS)).to_have_count(len(want["neighbours"]))
    assert card_ids(page) == [n["object_id"] for n in want["neighbours"]]
    assert not set(card_ids(page)) & set(like + unlike)  # the examples themselves are left out
    # the picks show on every card of the same object
    expect(page.locator(f'#panel-anomalies .card[data-object-id="{like[1]}"] .pick-like')).to_have_attribute(
        "aria-pressed", "true")
    # the same selection voted in one go: interesting for the ones to look like, boring for the others
    bar.get_by_role("button", name="Vote them interesting / boring").click()
    for oid, label in [(like[0], "interesting"), (like[1], "interesting"), (unlike[0], "boring")]:
        expect(page.locator(f'#panel-anomalies .card[data-object-id="{oid}"] .vote-{label}')).to_have_attribute(
            "aria-pressed", "true")
        saved = page.request.get(f"{live_server}/api/v1/votes?object_id={oid}&label={label}").json()
        assert saved["total"] >= 1
    bar.get_by_role("button", name="Clear").click()
    expect(bar).to_be_hidden()


def test_clicking_a_map_point_opens_that_object(page: Page, store: IndexedSurvey, shots_dir: Path) -> None:
    query = str(store.catalog["object_id"][7])
    page.goto(f"/?q={query}&k=12#map")
    page.wait_for_function("() => window.__skysift.marks.mapDrawnMs > 0")
    assert page.evaluate("() => window.__skysift.map.n") == len(store)
    row, x, y = isolated_map_point(page)
    assert row >= 0
    page.mouse.click(x, y)
    panel = page.get_by_role("dialog")
    expect(panel).to_be_visible()
    expect(panel.locator("#detail-title")).to_have_text(str(store.catalog["object_id"][row]))
    # the point can be picked as an example to look like, as a card can (issue #15: map points too)
    bar = page.get_by_role("region", name="selected examples")
    panel.get_by_role("button", name="More like this").click()
    expect(bar).to_contain_text("1 to look like")
    expect(panel.locator(".pick-like")).to_have_attribute("aria-pressed", "true")
    panel.get_by_role("button", name="More like this").click()  # and taken back
    expect(bar).to_be_hidden()
    panel.get_by_role("button", name="Close details").click()
    expect(page.locator(CARDS)).to_have_count(12)  # the query's results, highlighted on the map:
    highlight = page.evaluate("() => window.__skysift.map.highlight")
    assert highlight["queryRow"] == store.row_of(query) and len(highlight["rows"]) == 12
    page.mouse.wheel(0, -300)  # zoom in and back out: the view redraws without errors
    page.mouse.wheel(0, 300)
    page.wait_for_function("() => window.__skysift.map.frames.length > 1")
    expect(page.locator("#map-info")).to_contain_text(f"{len(store)} objects")
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "map", shots_dir)


def test_errors_read_as_sentences(page: Page, tmp_path: Path) -> None:
    page.goto("/")
    wait_ready(page)
    box = page.get_by_role("searchbox")
    box.fill("no-such-galaxy")
    box.press("Enter")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("Unknown object: no object with id 'no-such-galaxy' in this survey.")
    expect(page.locator(CARDS)).to_have_count(0)

    box.fill("0 -89.5")  # a valid position far from the tiny survey's patch
    box.press("Enter")
    expect(alert).to_contain_text("Nothing at that position: no catalogued object within 3 arcsec")
    expect(alert).to_contain_text("the nearest object")

    bad = tmp_path / "notes.fits"
    bad.write_text("these are not pixels")
    page.locator("#file").set_input_files(str(bad))
    expect(alert).to_contain_text("Unsupported file (notes.fits): the file is not a recognised image format")
    text = alert.inner_text()
    assert not text.startswith(("Something went wrong", "Error")) and "undefined" not in text


def test_slow_answers_show_a_busy_state(page: Page, store: IndexedSurvey) -> None:
    held = []
    page.route("**/similar?*", lambda route: held.append(route))
    page.goto("/")
    wait_ready(page)
    page.get_by_role("searchbox").fill(str(store.catalog["object_id"][1]))
    page.get_by_role("searchbox").press("Enter")
    page.wait_for_function("() => document.querySelector('main').getAttribute('aria-busy') === 'true'")
    expect(page.locator("#busy")).to_be_visible()
    assert held, "the search request was made"
    held[0].continue_()
    expect(page.locator(CARDS)).to_have_count(12)
    expect(page.locator("main")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#busy")).to_be_hidden()


def test_page_uses_only_its_own_origin(page: Page, store: IndexedSurvey, live_server: str) -> None:
    """No CDN, no external fetch: every request the page makes goes to the service."""
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.goto(f"/?q={store.catalog['object_id'][2]}#map")
    page.wait_for_function("() => window.__skysift.marks.mapDrawnMs > 0")
    expect(page.locator(CARDS)).to_have_count(12)
    foreign = [u for u in seen if not u.startswith(live_server)]
    assert not foreign, json.dumps(foreign)


def isolated_map_point(page: Page) -> tuple[int, float, float]:
    """(row, x, y) of the on-screen map point farthest from any other, so a click cannot hit a neighbour."""
    return tuple(page.evaluate("""() => {
        const m = window.__skysift.map, r = m.canvas.getBoundingClientRect(), pts = [];
        for (let i = 0; i < m.n; i++) pts.push(m.toClient(i));
        let best = [-1, 0, 0], bestD = -1;
        pts.forEach((p, i) => {
          if (p.x < r.left + 20 || p.x > r.right - 20 || p.y < r.top + 20 || p.y > r.bottom - 20) return;
          let d = Infinity;
          pts.forEach((q, j) => { if (j !== i) d = Math.min(d, (p.x - q.x) ** 2 + (p.y - q.y) ** 2); });
          if (d > bestD) { bestD = d; best = [i, p.x, p.y]; }
        });
        return best;
    }"""))


def expect_results_of(page: Page, live_server: str, oid: str, k: int) -> None:
    """The search tab shows oid's own neighbours (as the API gives them), the address names oid, and
    nothing replaces them once every request has settled."""
    expect(page.get_by_role("tab", name="Similar objects")).to_have_attribute("aria-selected", "true")
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", oid)
    want = [n["object_id"] for n in
            page.request.get(f"{live_server}/api/v1/objects/{oid}/similar?k={k}").json()["neighbours"]]
    expect(page.locator("main")).to_have_attribute("aria-busy", "false")
    page.wait_for_timeout(300)  # a late re-run of an older search (the bug) would land here
    assert card_ids(page) == want
    assert f"q={oid}" in page.url and page.url.endswith("#search")


@pytest.mark.parametrize("tab", ["anomalies", "lenses", "map"])
def test_search_from_here_on_each_tab_after_an_earlier_search(page: Page, store: IndexedSurvey, live_server: str,
                                                              tab: str) -> None:
    """Issue #17: ranking (or map) -> "Search from here" (and Enter on a card) showed the previous
    search's results under the new address."""
    if tab == "lenses":  # the tiny survey has no known lenses, so its lens ranking is empty: rank by anomaly
        page.route("**/api/v1/rankings/lenses?*", lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace("/rankings/lenses", "/rankings/anomalies"))))
    earlier = str(store.catalog["object_id"][0])
    page.goto(f"/?q={earlier}&k=6")
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", earlier)
    names = {"anomalies": "Unusual objects", "lenses": "Lens candidates", "map": "Map"}
    page.get_by_role("tab", name=names[tab]).click()
    panel = page.get_by_role("dialog")
    if tab == "map":
        page.wait_for_function("() => window.__skysift.marks.mapDrawnMs > 0")
        row, x, y = isolated_map_point(page)
        page.mouse.click(x, y)
        picked = str(store.catalog["object_id"][row])
    else:
        grid = page.locator(f"#panel-{tab} .grid .card")
        expect(grid).to_have_count(24)
        ids = card_ids(page, f"#panel-{tab} .grid .card")
        picked = next(i for i in ids if i != earlier)
        grid.nth(ids.index(picked)).click()
    expect(panel.locator("#detail-title")).to_have_text(picked)
    panel.get_by_role("button", name="Search from here").click()
    expect(panel).to_be_hidden()
    expect_results_of(page, live_server, picked, 6)
    if tab == "map":
        return
    # Enter on a focused card of the ranking, after that search
    page.get_by_role("tab", name={"anomalies": "Unusual objects", "lenses": "Lens candidates"}[tab]).click()
    grid = page.locator(f"#panel-{tab} .grid .card")
    ids = card_ids(page, f"#panel-{tab} .grid .card")
    other = next(i for i in ids if i not in (earlier, picked))
    grid.nth(ids.index(other)).focus()
    page.keyboard.press("Enter")
    expect_results_of(page, live_server, other, 6)
    page.go_back()  # one history entry per search: back is the search before, on its tab
    expect(page.locator(CARDS).first).to_have_attribute("data-object-id", picked)


def test_lens_tab_leaves_out_known_lenses_and_shows_them_marked_on_request(page: Page, live_server: str) -> None:
    """The tiny version has no known lenses, so the lens route is answered from the anomaly ranking
    with two seeds declared: the page offers to show them and marks them when asked."""
    asked: list[str] = []

    def lenses(route: Route) -> None:
        url = route.request.url
        asked.append(url)
        body = page.request.get(url.replace("/rankings/lenses", "/rankings/anomalies")
                                .replace("&include_known=true", "")).json()
        body["ranking"] = "lens"
        if "include_known=true" in url:
            for item in body["items"][:2]:
                item["known_lens"] = True
        else:
            body["known_left_out"] = 2
        route.fulfill(json=body)

    page.route("**/api/v1/rankings/lenses*", lenses)
    page.goto("/#lenses")
    toggle = page.locator("#panel-lenses .known-toggle")
    expect(toggle).to_be_visible()
    expect(toggle).to_contain_text("show the 2 known lenses")
    expect(page.locator("#panel-lenses .card.known")).to_have_count(0)
    toggle.locator("input").check()
    expect(page.locator("#panel-lenses .card.known")).to_have_count(2)
    expect(page.locator("#panel-lenses .card.known .head").first).to_contain_text("known lens")
    assert "include_known=true" in asked[-1] and "include_known" not in asked[0]
