#!/usr/bin/env python3
"""The Python a user would write instead of crm-ingest `plan`: csv.DictReader plus the same
mapping and validation as benches/bench.toml, serialising each valid row to JSON.
Usage: python3 benches/peer.py FILE  ->  prints "rows valid invalid seconds"."""
import csv
import json
import re
import sys
import time

EMAIL = re.compile(r"^[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(\.[\w-]+)+$")
BOOLS = {"true": True, "yes": True, "y": True, "1": True, "t": True,
         "false": False, "no": False, "n": False, "0": False, "f": False}


def e164(text):
    digits = "".join(c for c in text if c.isdigit() or c == "+")
    if any(c.isalpha() for c in text):
        return None
    if text.strip().startswith("+44") and "(0)" in text:
        digits = digits.replace("+440", "+44", 1)
    if digits.startswith("+"):
        out = digits
    elif digits.startswith("00"):
        out = "+" + digits[2:]
    elif digits.startswith("0"):
        out = "+44" + digits[1:]
    else:
        out = "+44" + digits
    return out if 10 <= len(out) <= 16 else None


def title(s):
    return " ".join(w[:1].upper() + w[1:].lower() for w in s.split(" "))


def map_row(r):
    errors = []
    out = {}
    code = r["Customer ID"].strip().upper()
    if not code or len(code) > 50:
        errors.append("Code")
    out["Code"] = code
    name = " ".join(r["Company"].split())
    if not name or len(name) > 255:
        errors.append("Name")
    out["Name"] = name
    active = BOOLS.get(r["Active"].strip().lower())
    if active is None:
        errors.append("Active")
    out["Active"] = active
    out["ContactName"] = title(f'{r["First Name"].strip()} {r["Surname"].strip()}')
    email = r["Email"].strip().lower()
    if email and (not EMAIL.match(email) or len(email) > 128):
        errors.append("Email")
    out["Email"] = email
    if r["Phone"].strip():
        phone = e164(r["Phone"])
        if phone is None:
            errors.append("Phone")
        out["Phone"] = phone
    out["StreetAddress"] = r["Address"]
    out["City"] = r["Town"].strip()
    out["ZIP"] = r["Postcode"].upper()
    if any(len(level) > 80 for level in r["Territory"].split(">")):
        errors.append("Territory")
    out["Territory"] = r["Territory"]
    out["Note"] = r["Notes"]
    lists = [p.strip() for p in r["Price lists"].split("|") if p.strip()]
    if lists:
        out["PriceLists"] = [{"Name": p} for p in lists]
    if r["Segment"] not in ("Gold", "Silver", "Bronze"):
        errors.append("Segment")
    out["CustomFields"] = [{"Field": "Segment", "Value": r["Segment"]}]
    return out, errors


def main():
    started = time.perf_counter()
    rows = valid = invalid = 0
    with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
        for r in csv.DictReader(f):
            rows += 1
            payload, errors = map_row(r)
            if errors:
                invalid += 1
            else:
                json.dumps(payload)
                valid += 1
    print(rows, valid, invalid, f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
