"""Plausible, deterministic customers for the demo and the benchmarks."""

from __future__ import annotations

import random

FIRST = ["Ana", "Luis", "María", "José", "Carmen", "Javier", "Lucía", "David", "Elena", "Pablo", "Sara", "Jorge",
         "Laura", "Miguel", "Paula", "Daniel", "Marta", "Carlos", "Irene", "Sergio", "Emma", "Oliver", "Amelia",
         "Harry", "Isla", "Jack", "Sophie", "George", "Chloé", "Noah", "Zoë", "Björn", "Øyvind", "Siobhán"]
LAST = ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
        "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Smith", "Jones", "Taylor",
        "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright", "O'Brien", "Müller", "Núñez"]
CITIES = [("Madrid", "280"), ("Barcelona", "080"), ("Valencia", "460"), ("Sevilla", "410"), ("Bilbao", "480"),
          ("Zaragoza", "500"), ("Málaga", "290")]
STREETS = ["Calle Mayor", "Gran Vía", "Calle del Sol", "Avenida de la Paz", "Calle Real", "Paseo del Prado"]


def demo_customers(count: int, seed: int = 42):
    rng = random.Random(seed)
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, cp = rng.choice(CITIES)
        user = f"{first}.{last}{i}".lower().replace(" ", "").replace("'", "")
        user = user.encode("ascii", "ignore").decode() or f"customer{i}"
        yield {
            "first_name": first,
            "last_name": last,
            "email": f"{user}@example.com" if rng.random() < 0.8 else "",
            "phone": f"+34 6{rng.randrange(10**7, 10**8):08d}" if rng.random() < 0.9 else "",
            "street": f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
            "city": city,
            "postcode": f"{cp}{rng.randrange(0, 100):02d}",
            "country": "ES",
            "payment_status": rng.choices(["valid", "pending", "defaulter"], [90, 7, 3])[0],
        }
