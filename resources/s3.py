import dagster as dg

from mediasift.errors import StoreNotConfigured
from mediasift.store.s3 import s3_client


class S3Resource(dg.ConfigurableResource):
    """The Dagster side's boto3 client to the bucket's store, built like every mediasift client. Keys are
    `dg.EnvVar`s, so the UI shows their names, never their values. (dagster-aws's S3Resource does the same;
    importing dagster_aws cost every run process 2.0 of its 4.9 s of imports before its first object.)"""

    endpoint_url: str | None = None
    region_name: str
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    def get_client(self):
        if not self.endpoint_url:
            raise StoreNotConfigured("no S3 endpoint for the Dagster processes: set MEDIASIFT_S3_ENDPOINT_URL "
                                     "(`mediasift up` sets it for the processes it starts)")
        return s3_client(self.endpoint_url, self.region_name, self.aws_access_key_id, self.aws_secret_access_key)
