"""What the ``tabular_training`` DAG is built from: its config, pod specs, sweep generation,
result checks and summary. Light on purpose: parsing the DAG imports only Airflow, the
Kubernetes provider and ``kubernetes.client.models``; everything else is imported inside tasks."""
