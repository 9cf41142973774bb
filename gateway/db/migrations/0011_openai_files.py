from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0010_recognition')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FineTuningJob',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='fine_tuning_jobs', on_delete=OnDelete.CASCADE)),
                ('training_job', fields.OneToOneField('models.TrainingJob', source_field='training_job_id', db_constraint=True, to_field='id', related_name='fine_tuning', on_delete=OnDelete.CASCADE)),
                ('model', fields.CharField(max_length=500)),
                ('training_file', fields.CharField(max_length=64)),
                ('validation_file', fields.CharField(null=True, max_length=64)),
                ('suffix', fields.CharField(null=True, max_length=64)),
                ('seed', fields.IntField(default=0)),
                ('hyperparameters', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('fine_tuned_model', fields.CharField(null=True, db_index=True, max_length=300)),
                ('trained_tokens', fields.BigIntField(null=True)),
                ('checkpoints', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('deleted_models', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('error', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('metadata', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'fine_tuning_job', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OpenAIFile',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='openai_files', on_delete=OnDelete.CASCADE)),
                ('filename', fields.CharField(max_length=255)),
                ('purpose', fields.CharField(db_index=True, max_length=32)),
                ('bytes', fields.BigIntField()),
                ('lines', fields.IntField(default=0)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'openai_file', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='TrainingJob',
            name='task',
            field=fields.ForeignKeyField('models.Task', source_field='task_id', null=True, db_constraint=True, to_field='id', related_name='training_jobs', on_delete=OnDelete.CASCADE),
        ),
    ]
