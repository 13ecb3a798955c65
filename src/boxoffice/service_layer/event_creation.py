"""Organisers' new events, as they travel from the gateway to the catalog service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from boxoffice.domain.catalog import EventSpec, PriceCategory, SeatRow
from boxoffice.domain.waiting_room import AUTO, AdmitRate, OnSale


def event_to_data(spec: EventSpec) -> dict[str, Any]:
    return {
        "eventId": spec.event_id, "name": spec.name, "venue": {"name": spec.venue_name, "city": spec.venue_city},
        "startsAt": spec.starts_at.isoformat(), "currency": spec.currency,
        "priceCategories": [{"categoryId": c.category_id, "name": c.name, "price": str(c.price)}
                            for c in spec.categories],
        "rows": [{"row": r.label, "section": r.section, "categoryId": r.category_id, "seats": r.seats}
                 for r in spec.rows],
        "seats": [{"seatId": s, "row": r, "number": n, "section": sec, "categoryId": c}
                  for s, r, n, sec, c in spec.listed_seats],
        "bestOrder": list(spec.best_order),
        **({"onSale": on_sale_to_data(spec.on_sale)} if spec.on_sale else {}),
        **({"organiserId": spec.organiser_id} if spec.organiser_id is not None else {}),
        **({"holdSeconds": spec.hold_seconds} if spec.hold_seconds is not None else {}),
    }


def on_sale_to_data(on_sale: OnSale) -> dict[str, Any]:
    return {"opensAt": on_sale.opens_at.isoformat(), "waitingRoom": on_sale.waiting_room,
            "admitPerMinute": on_sale.admit_per_minute, "admissionMinutes": on_sale.admission_minutes}


def rate_from_data(value: object) -> AdmitRate:
    return AUTO if value == AUTO else int(str(value))


def on_sale_from_data(data: dict[str, Any]) -> OnSale:
    return OnSale(datetime.fromisoformat(data["opensAt"]), bool(data.get("waitingRoom", True)),
                  rate_from_data(data.get("admitPerMinute", 600)), int(data.get("admissionMinutes", 10)))


def event_from_data(data: dict[str, Any]) -> EventSpec:
    return EventSpec(
        data["eventId"], data["name"], data["venue"]["name"], data["venue"].get("city", ""),
        datetime.fromisoformat(data["startsAt"]), data["currency"],
        tuple(PriceCategory(c["categoryId"], c["name"], Decimal(c["price"])) for c in data["priceCategories"]),
        tuple(SeatRow(r["row"], r["section"], r["categoryId"], int(r["seats"])) for r in data.get("rows", [])),
        tuple((s["seatId"], s["row"], int(s["number"]), s["section"], s["categoryId"]) for s in data.get("seats", [])),
        tuple(str(name) for name in data.get("bestOrder") or []),
        on_sale_from_data(data["onSale"]) if data.get("onSale") else None,
        str(data["organiserId"]) if data.get("organiserId") is not None else None,
        int(data["holdSeconds"]) if data.get("holdSeconds") is not None else None,
    )
