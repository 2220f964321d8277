"""Plausible, deterministic customers for the demo and the benchmarks."""

from __future__ import annotations

import random
import unicodedata

FIRST = ["Ana", "Luis", "María", "José", "Carmen", "Javier", "Lucía", "David", "Elena", "Pablo", "Sara", "Jorge",
         "Laura", "Miguel", "Paula", "Daniel", "Marta", "Carlos", "Irene", "Sergio", "Emma", "Oliver", "Amelia",
         "Harry", "Isla", "Jack", "Sophie", "George", "Chloé", "Noah", "Zoë", "Björn", "Øyvind", "Siobhán"]
LAST = ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín",
        "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez", "Romero", "Smith", "Jones", "Taylor",
        "Brown", "Williams", "Wilson", "Johnson", "Davies", "Robinson", "Wright", "O'Brien", "Müller", "Núñez"]
CITIES = [("Madrid", "280"), ("Barcelona", "080"), ("Valencia", "460"), ("Sevilla", "410"), ("Bilbao", "480"),
          ("Zaragoza", "500"), ("Málaga", "290")]
STREETS = ["Calle Mayor", "Gran Vía", "Calle del Sol", "Avenida de la Paz", "Calle Real", "Paseo del Prado"]

# Letters that have no ASCII base in Unicode's decomposition (NFKD leaves them whole).
_ASCII_LETTERS = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ß": "ss", "đ": "d", "ł": "l", "þ": "th", "ð": "d",
                                "ı": "i"})


def ascii_letters(text: str) -> str:
    """``text`` in lower-case ASCII for an e-mail's local part: accents taken off
    (García -> garcia, Müller -> muller, Øyvind -> oyvind), never a letter dropped;
    what is not a letter or digit (spaces, apostrophes) goes."""
    decomposed = unicodedata.normalize("NFKD", text.lower().translate(_ASCII_LETTERS))
    return "".join(c for c in decomposed if c.isascii() and c.isalnum())


def demo_customers(count: int, seed: int = 42):
    rng = random.Random(seed)
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, cp = rng.choice(CITIES)
        user = f"{ascii_letters(first)}.{ascii_letters(last)}{i}"
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


DEMO_PRODUCTS = [  # sku, description, brand, size, retail price, tax %, barcode
    ("MILK-1L", "Whole milk", "Pascual", "1 L", "1.19", "4", "8410297112041"),
    ("BREAD-250", "Baguette", "Panrico", "250 g", "0.95", "4", "8410000810004"),
    ("EGGS-12", "Free-range eggs", "Granja Sol", "12 u", "3.45", "4", "8437005417010"),
    ("OIL-1L", "Extra virgin olive oil", "Carbonell", "1 L", "8.99", "4", "8410010210016"),
    ("RICE-1K", "Round rice", "SOS", "1 kg", "1.79", "4", "8410184020116"),
    ("COFFEE-250", "Ground coffee", "Marcilla", "250 g", "3.29", "10", "8410091020217"),
    ("WATER-15", "Mineral water", "Font Vella", "1.5 L", "0.59", "10", "8410128000018"),
    ("WINE-75", "Rioja crianza", "Marqués de Cáceres", "75 cl", "9.95", "21", "8410406311017"),
    ("SOAP-500", "Hand soap", "Sanex", "500 ml", "2.49", "21", "8714789734319"),
    ("TISSUE-6", "Kitchen roll", "Scottex", "6 u", "4.15", "21", "5029053038889"),
]


def demo_products_csv() -> str:
    lines = ["sku,description,brand,size,retail_price,tax_rate,active,barcodes"]
    lines += [f"{sku},{desc},{brand},{size},{price},{tax},yes,{code}" for sku, desc, brand, size, price, tax, code in DEMO_PRODUCTS]
    return "\n".join(lines) + "\n"


# A POS that keeps its customers' names, postcode and loyalty tier (docs/importing.md).
DEMO_IMPORTS = {"import": {"customers": {
    "source": "pos", "columns": {"NUM": "external_id", "NAME": "first_name", "SURNAME": "last_name", "CITY": "city",
                                 "ZIP": "postcode", "MAIL": "email", "TIER": "extra.loyalty_tier"},
    "owned": ["first_name", "last_name", "city", "postcode", "extra.loyalty_tier"],
    "export": ["email", "phone", "mobile"],
}}}
DEMO_POS_CSV = """NUM;NAME;SURNAME;CITY;ZIP;MAIL;TIER
4711;Pia;Posada;Toledo;45001;pia@example.com;gold
4712;Íñigo;Ortiz;Bilbao;48001;;silver
4713;Marta;Soler;Girona;17001;marta.soler@example.com;
4714;Tomás;Ibáñez;Zaragoza;50001;;gold
"""
# A sign-up sheet with a possible duplicate of an imported customer and a bad e-mail.
DEMO_SIGNUPS_CSV = """first_name,last_name,email,phone
Rosa,Vidal,rosa@example.com,+34 611 000 111
Marta,Soler,marta.soler@example.com,
Jon,Ugarte,jon-at-example,
"""
