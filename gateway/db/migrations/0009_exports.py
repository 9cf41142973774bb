from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_predictions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ExportJob',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.NO_ACTION)),
                ('version', fields.ForeignKeyField('models.ModelVersion', source_field='version_id', db_constraint=True, to_field='id', related_name='exports', on_delete=OnDelete.CASCADE)),
                ('model', fields.CharField(max_length=300)),
                ('format', fields.CharField(max_length=16)),
                ('gguf_type', fields.CharField(default='', max_length=8)),
                ('status', fields.CharField(default='queued', db_index=True, max_length=16)),
                ('stage', fields.CharField(default='', max_length=64)),
                ('progress', fields.FloatField(default=0.0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('events', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('file_name', fields.CharField(default='', max_length=300)),
                ('size_bytes', fields.BigIntField(null=True)),
                ('sha256', fields.CharField(default='', max_length=64)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('expires', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('heartbeat', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'export_job', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
