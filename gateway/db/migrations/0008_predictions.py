from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0007_job_leases')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Prediction',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='predictions', on_delete=OnDelete.NO_ACTION)),
                ('kind', fields.CharField(max_length=8)),
                ('domain', fields.CharField(max_length=100)),
                ('model', fields.CharField(max_length=500)),
                ('batch', fields.BooleanField(default=False)),
                ('status', fields.CharField(default='pending', db_index=True, max_length=16)),
                ('plan', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('media_count', fields.IntField(default=0)),
                ('response', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('confidence', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('usage', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('error', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('training', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('request_id', fields.CharField(default='', max_length=200)),
                ('request_created_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('environment', fields.CharField(default='dev', max_length=16)),
                ('session_id', fields.CharField(null=True, max_length=200)),
                ('owner', fields.CharField(null=True, max_length=100)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('run_after', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
                ('callback_url', fields.TextField(null=True, unique=False)),
                ('callback_status', fields.CharField(null=True, db_index=True, max_length=16)),
                ('callback_attempts', fields.IntField(default=0)),
                ('callback_next_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('callback_error', fields.TextField(null=True, unique=False)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'prediction', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookSecret',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', unique=True, db_constraint=True, to_field='id', related_name='webhook_secrets', on_delete=OnDelete.CASCADE)),
                ('secret', fields.CharField(max_length=128)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'webhook_secret', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
