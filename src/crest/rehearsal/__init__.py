"""The paper rehearsal: stand-ins of the hub, the paper DAG run offline on them, and its verdict."""
