from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_api_key_last_used')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TrainingJob',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='training_jobs', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(default='queued', db_index=True, max_length=16)),
                ('error', fields.TextField(null=True, unique=False)),
                ('step', fields.IntField(default=0)),
                ('total_steps', fields.IntField(null=True)),
                ('loss', fields.FloatField(null=True)),
                ('eta_s', fields.FloatField(null=True)),
                ('train_samples', fields.IntField(default=0)),
                ('test_samples', fields.IntField(default=0)),
                ('hyperparameters', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('version', fields.IntField(null=True)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'training_job', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ModelVersion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('base_model', fields.CharField(max_length=500)),
                ('adapter_dir', fields.TextField(unique=False)),
                ('metrics', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('hyperparameters', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('train_samples', fields.IntField(default=0)),
                ('test_samples', fields.IntField(default=0)),
                ('job', fields.ForeignKeyField('models.TrainingJob', source_field='job_id', null=True, db_constraint=True, to_field='id', related_name='model_versions', on_delete=OnDelete.SET_NULL)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'model_version', 'app': 'models', 'unique_together': (('task', 'version'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrainingEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('models.TrainingJob', source_field='job_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('level', fields.CharField(default='info', max_length=8)),
                ('type', fields.CharField(default='message', max_length=16)),
                ('message', fields.TextField(default='', unique=False)),
                ('data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'training_event', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
