"""CSV files in other encodings than UTF-8, uploaded on the HQ pages (products,
imports, batches) or given to the CLI (`lanehub hq products import`, `lanehub
hq import`, `lanehub hq batch new-customers`): UTF-8 with or without a BOM and
UTF-16 with a BOM decode exactly, Latin-1 and Windows-1252 are detected and
decoded, and a file that reads as no text we accept is refused with one
message naming the file and what it looks like; never a 500 or a traceback."""

from __future__ import annotations

import io
import json
import re
import sqlite3

import pytest
from web_sites import csrf, login

from lanehub.chain.processes import run_lanehub

NAMES = ("Müller", "Peña", "Gómez-Ibáñez")
# Excel's "Unicode text" is UTF-16 with a BOM and tab-separated; the rest are comma-separated.
ENCODINGS = {
    "latin-1": ("latin-1", ","),
    "cp1252": ("cp1252", ","),  # with a character Latin-1 lacks: the typographic apostrophe
    "utf-16 BOM": ("utf-16", "\t"),
    "utf-8 BOM": ("utf-8-sig", ","),
}
# Shift-JIS Japanese: bytes that are not UTF-8 and read as no Western text.
SHIFT_JIS = "first_name,last_name\n太郎,山田\n花子,佐藤\n".encode("shift_jis")
# A picture saved as .csv: binary, not text in any encoding.
BINARY = bytes(range(256)) * 4


def products_csv(encoding: str, delimiter: str) -> bytes:
    lines = ["sku,description,retail_price", "MUL,Leche Müller,1.20", "PEN,Queso Peña,3.50"]
    if encoding == "cp1252":
        lines.append("OHA,O’Hara’s “Irish” butter,2.10")
    return ("\n".join(line.replace(",", delimiter) for line in lines) + "\n").encode(encoding)


def people_csv(encoding: str, delimiter: str, header: tuple[str, ...] = ("first_name", "last_name")) -> bytes:
    rows = [header, ("Hans", "Müller"), ("José", "Peña"), ("Ana", "Gómez-Ibáñez")]
    if header[0] == "external_id":
        rows = [header, *[(str(70 + i), *row) for i, row in enumerate(rows[1:])]]
    return "".join(delimiter.join(row) + "\n" for row in rows).encode(encoding)


def descriptions(db) -> dict[str, str]:
    return dict(db.conn.execute("SELECT sku, description FROM products").fetchall())


def last_names(db) -> set[str]:
    return {row[0] for row in db.conn.execute("SELECT last_name FROM customers")}


def post_file(client, path, data: bytes, name: str, **form):
    token = csrf(client, "/customers/")
    return client.post(path, data={"csrf_token": token, "file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


# --- the helper itself -----------------------------------------------------------------------

@pytest.mark.parametrize("label", ENCODINGS)
def test_decode_upload_gives_the_exact_text(label):
    from lanehub.runtime.text_files import decode_upload

    encoding, delimiter = ENCODINGS[label]
    text = products_csv(encoding, delimiter).decode(encoding)
    assert decode_upload(text.encode(encoding), "p.csv") == text.lstrip("\ufeff")
    assert decode_upload(text.encode("utf-8"), "p.csv") == text.lstrip("\ufeff")  # plain UTF-8


@pytest.mark.parametrize("data, looks_like", [(SHIFT_JIS, "Japanese"), (BINARY, "binary data")],
                         ids=["shift-jis", "binary"])
def test_decode_upload_refuses_what_it_cannot_read_and_says_what_it_looks_like(data, looks_like):
    from lanehub.runtime.text_files import UploadEncodingError, decode_upload

    with pytest.raises(UploadEncodingError) as caught:
        decode_upload(data, "people.csv")
    message = str(caught.value)
    assert message.startswith("people.csv: ") and "not UTF-8" in message and looks_like in message
    assert "\n" not in message and "save it as UTF-8" in message


# --- the pages -------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ENCODINGS)
def test_the_products_page_imports_a_csv_in_another_encoding(sites, label):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    data = products_csv(*ENCODINGS[label])
    preview = post_file(client, "/products/import", data, "products.csv")
    assert preview.status_code == 200 and "Leche Müller" in preview.get_data(as_text=True)
    done = post_file(client, "/products/import", data, "products.csv", confirm="1")
    assert done.status_code == 302
    expected = {"MUL": "Leche Müller", "PEN": "Queso Peña"}
    if label == "cp1252":
        expected["OHA"] = "O’Hara’s “Irish” butter"
    assert descriptions(hq) == expected


@pytest.mark.parametrize("label", ENCODINGS)
def test_the_imports_page_imports_customers_in_another_encoding(sites, label):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    data = people_csv(*ENCODINGS[label], header=("external_id", "first_name", "last_name"))
    preview = post_file(client, "/imports/customers", data, "pos.csv")
    assert preview.status_code == 200 and "Peña" in preview.get_data(as_text=True)
    assert post_file(client, "/imports/customers", data, "pos.csv", confirm="1").status_code == 302
    assert set(NAMES) <= last_names(hq)


@pytest.mark.parametrize("label", ENCODINGS)
def test_the_batches_page_reads_a_csv_in_another_encoding(sites, label):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    response = post_file(client, "/batches/new-customers", people_csv(*ENCODINGS[label]), "fair.csv")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    rows = [json.loads(fields) for (fields,) in hq.conn.execute("SELECT fields FROM batch_rows ORDER BY row_no")]
    assert [row["last_name"] for row in rows] == list(NAMES)


@pytest.mark.parametrize("data, looks_like", [(SHIFT_JIS, "Japanese"), (BINARY, "binary data")],
                         ids=["shift-jis", "binary"])
@pytest.mark.parametrize("path, field", [("/products/import", "products"), ("/imports/customers", "imports"),
                                         ("/batches/new-customers", "batches")])
def test_a_file_no_encoding_reads_is_refused_on_the_page_with_what_it_looks_like(sites, path, field, data,
                                                                                 looks_like):
    apps, hq, _ = sites
    client = apps["hq"].test_client()
    login(client, "admin")
    before = hq.head()
    response = post_file(client, path, data, "people.csv", confirm="1")
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page[:2000]
    alert = re.search(r'<p class="error" role="alert"[^>]*>(.*?)</p>', page, re.S)
    assert alert and "people.csv" in alert.group(1) and "not UTF-8" in alert.group(1) and looks_like in alert.group(1)
    assert hq.head() == before and hq.conn.execute("SELECT count(*) FROM batches").fetchone()[0] == 0


# --- the CLI ---------------------------------------------------------------------------------

@pytest.fixture
def hq_config(tmp_path):
    from hq.db import HQDatabase
    from lanehub.domain.codes import CodeFormat

    HQDatabase(tmp_path / "hq.db", CodeFormat()).close()
    path = tmp_path / "hq.toml"
    path.write_text(f'[hq]\ndb = "{tmp_path / "hq.db"}"\n')
    return path


def query(tmp_path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(tmp_path / "hq.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_cli_imports_products_customers_and_batches_in_other_encodings(tmp_path, hq_config):
    products = tmp_path / "products.csv"
    products.write_bytes(products_csv("latin-1", ","))
    run_lanehub("hq", "products", "import", str(products), "-c", str(hq_config))
    assert dict(query(tmp_path, "SELECT sku, description FROM products")) == {"MUL": "Leche Müller",
                                                                            "PEN": "Queso Peña"}
    customers = tmp_path / "pos.csv"
    customers.write_bytes(people_csv("cp1252", ",", header=("external_id", "first_name", "last_name")))
    run_lanehub("hq", "import", "customers", str(customers), "-c", str(hq_config))
    assert {row[0] for row in query(tmp_path, "SELECT last_name FROM customers")} == set(NAMES)
    batch = tmp_path / "fair.csv"
    batch.write_bytes(people_csv("utf-16", "\t"))
    out = run_lanehub("hq", "batch", "new-customers", str(batch), "-c", str(hq_config)).stdout
    assert all(name in out for name in NAMES), out


@pytest.mark.parametrize("command", [("products", "import"), ("import", "customers"), ("batch", "new-customers")])
def test_the_cli_refuses_a_file_no_encoding_reads_in_one_line(tmp_path, hq_config, command):
    bad = tmp_path / "people.csv"
    bad.write_bytes(SHIFT_JIS)
    result = run_lanehub("hq", *command, str(bad), "-c", str(hq_config), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "people.csv" in lines[0] and "not UTF-8" in lines[0] and "Japanese" in lines[0], lines
    assert query(tmp_path, "SELECT count(*) FROM changes") == [(0,)]
