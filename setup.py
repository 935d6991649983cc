"""Packaging for the billing server: one distribution, console scripts for each role."""

from setuptools import find_packages, setup

setup(
    name="isp-billing",
    version="0.1.0",
    description="Convergent billing server for internet and TV providers (RADIUS AAA, rating, ledger)",
    python_requires=">=3.11,<3.12",  # spyne 2.14 does not import on 3.12+
    packages=find_packages(
        include=["aaa*", "rating*", "billing*", "nms_adapters*", "cas_adapters*", "simulators*"]
    ),
    package_data={"billing.db": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"]},
    install_requires=[
        "pyrad>=2.6,<3",
        "twisted[tls]>=24.3,<27",  # [tls]: pyOpenSSL and service_identity for the payment API's TLS listener
        "sqlalchemy>=2.0.30,<2.2",
        "alembic>=1.13,<2",
        "psycopg[binary]>=3.2,<3.4",
        "pysnmp>=7.1,<8",
        "netmiko>=4.4,<5",
        "scapy>=2.6,<3",
        "spyne>=2.14,<2.15",
        "lxml>=5,<7",
        "click>=8.1,<9",  # CLI: nested groups, typed options and usage errors (exit 2) for free
        "rich>=13,<16",  # CLI: readable tables and progress bars
        "pycryptodome>=3.20,<5",  # MD4/DES for MS-CHAPv2 (OpenSSL 3 dropped MD4)
        "prometheus-client>=0.20,<1",  # the metrics endpoint: exposition format done right
        "zeep>=4.2,<5",  # the bank simulator's SOAP client: a real WSDL consumer, as banks use
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "hypothesis>=6.100,<7",
            "ruff>=0.6",
        ],
    },
    entry_points={
        "console_scripts": [
            "billing-admin=billing.cli.main:main",
            "billing-sim=simulators.main:main",
            "billingd=billing.daemon:main",
        ],
    },
)
