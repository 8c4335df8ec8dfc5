#!/usr/bin/env python3
"""Writes the workbooks tests/corpus_shapes.rs reads (run once; the outputs are committed).

    python3 -m pip install openpyxl xlwt && python3 tests/corpus/shapes/make.py

Each workbook holds the test config's columns (Code, Name, Active, Email, Phone, Territory,
Note) under two title lines and a blank one, with the cases issue 22 names: rows whose last
cells are empty, a date in the 1904 system, a duration, a whole number, an error cell. The
hostile ones are hand-made zip archives.
"""
import datetime
import io
import os
import zipfile

import openpyxl
import xlwt

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = ["Code", "Name", "Active", "Email", "Phone", "Territory", "Note"]


def xlsx():
    wb = openpyxl.Workbook()
    wb.epoch = openpyxl.utils.datetime.CALENDAR_MAC_1904
    ws = wb.active
    ws.title = "Clients"
    ws["A1"] = "Client report"
    ws["A2"] = "Generated 01/12/2026"
    ws.append([])  # row 3 stays empty
    for i, h in enumerate(HEADER, 1):
        ws.cell(row=4, column=i, value=h)
    ws.append(["W1", "One", "yes"])  # row 5: its last four cells empty
    ws.append(["W2", None, "yes", None, None, datetime.timedelta(hours=255, minutes=10, seconds=10), datetime.date(2021, 1, 1)])
    ws["F6"].number_format = "[h]:mm:ss"
    ws["G6"].number_format = "yyyy-mm-dd"
    ws.append(["W3", "Three", "yes"])  # row 7: D7 holds #N/A
    c = ws.cell(row=7, column=4, value="#N/A")
    c.data_type = "e"
    ws.append([])  # row 8 empty
    ws.append(["W4", 12345, "no"])  # row 9: a whole number
    wb.save(os.path.join(HERE, "report.xlsx"))


def xls():
    wb = xlwt.Workbook()
    wb.dates_1904 = True
    ws = wb.add_sheet("Clients")
    ws.write(0, 0, "Client report")
    ws.write(1, 0, "Generated 01/12/2026")
    for i, h in enumerate(HEADER):
        ws.write(3, i, h)
    for i, v in enumerate(["W1", "One", "yes"]):
        ws.write(4, i, v)
    for i, v in enumerate(["W2", "", "yes"]):
        ws.write(5, i, v)
    # A duration is a number of days with a duration format.
    ws.write(5, 5, (255 * 3600 + 10 * 60 + 10) / 86400, xlwt.easyxf(num_format_str="[h]:mm:ss"))
    ws.write(5, 6, datetime.date(2021, 1, 1), xlwt.easyxf(num_format_str="yyyy-mm-dd"))
    for i, v in enumerate(["W3", "Three", "yes"]):
        ws.write(6, i, v)
    ws.row(6).set_cell_error(3, 0x2A)  # #N/A
    for i, v in enumerate(["W4", 12345, "no"]):
        ws.write(8, i, v)
    wb.save(os.path.join(HERE, "report.xls"))


def minimal_xlsx(sheet_xml, shared=None):
    """A hand-made workbook around one sheet's XML."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        types = '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        if shared is not None:
            types += '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        z.writestr("[Content_Types].xml", types + "</Types>")
        z.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
        rels = '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        if shared is not None:
            rels += '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
        z.writestr("xl/_rels/workbook.xml.rels", rels + "</Relationships>")
        z.writestr("xl/worksheets/sheet1.xml", '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>' + sheet_xml + "</sheetData></worksheet>")
        if shared is not None:
            z.writestr("xl/sharedStrings.xml", shared)
    return out.getvalue()


def inline(ref, text):
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def hostile():
    header = '<row r="1">' + "".join(inline(f"{chr(65 + i)}1", h) for i, h in enumerate(HEADER)) + "</row>"
    good = '<row r="2">' + inline("A2", "H1") + inline("B2", "Fine") + "</row>"
    far_column = '<row r="3">' + inline("FXSHRXW3", "x") + "</row>"
    far_row = '<row r="4000000000">' + inline("A4000000000", "x") + "</row>"
    open(os.path.join(HERE, "far_column.xlsx"), "wb").write(minimal_xlsx(header + good + far_column))
    open(os.path.join(HERE, "far_row.xlsx"), "wb").write(minimal_xlsx(header + good + far_row))
    # Shared strings that inflate to 40 MiB from a file of a few tens of KiB.
    sst = '<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + "<si><t>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx</t></si>" * (40 * 1024 * 1024 // 60) + "</sst>"
    open(os.path.join(HERE, "strings_bomb.xlsx"), "wb").write(minimal_xlsx(header + good, shared=sst))
    whole = minimal_xlsx(header + good)
    open(os.path.join(HERE, "truncated.xlsx"), "wb").write(whole[: len(whole) // 2])


if __name__ == "__main__":
    xlsx()
    xls()
    hostile()
