from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=200)),
                ('is_admin', fields.BooleanField(default=False)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'app_user', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Workspace',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=200)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'workspace', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=200)),
                ('prefix', fields.CharField(db_index=True, max_length=32)),
                ('salt', fields.CharField(max_length=64)),
                ('digest', fields.CharField(max_length=64)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('revoked', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'api_key', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Dataset',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='datasets', on_delete=OnDelete.NO_ACTION)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('version', fields.CharField(max_length=32)),
                ('system_prompt', fields.TextField(default='', unique=False)),
                ('user_prompt', fields.TextField(default='', unique=False)),
                ('result_template', fields.TextField(default='', unique=False)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'dataset', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Image',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='images', on_delete=OnDelete.NO_ACTION)),
                ('sha256', fields.CharField(db_index=True, max_length=64)),
                ('width', fields.IntField()),
                ('height', fields.IntField()),
                ('format', fields.CharField(max_length=16)),
                ('size_bytes', fields.IntField()),
                ('file_name', fields.CharField(default='', max_length=255)),
                ('meta_data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'image', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Sample',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('dataset', fields.ForeignKeyField('models.Dataset', source_field='dataset_id', db_constraint=True, to_field='id', related_name='samples', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=200)),
                ('test', fields.BooleanField(default=False)),
                ('type', fields.CharField(default='multi_random', max_length=16)),
                ('input_meta_data', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'sample', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SampleImage',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sample', fields.ForeignKeyField('models.Sample', source_field='sample_id', db_constraint=True, to_field='id', related_name='image_links', on_delete=OnDelete.CASCADE)),
                ('image', fields.ForeignKeyField('models.Image', source_field='image_id', db_constraint=True, to_field='id', related_name='sample_links', on_delete=OnDelete.NO_ACTION)),
                ('position', fields.IntField()),
            ],
            options={'table': 'sample_image', 'app': 'models', 'unique_together': (('sample', 'image'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Task',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='tasks', on_delete=OnDelete.NO_ACTION)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('system_prompt', fields.TextField(default='', unique=False)),
                ('user_prompt', fields.TextField(default='', unique=False)),
                ('max_tokens', fields.IntField(default=1000)),
                ('base_model', fields.CharField(default='', max_length=500)),
                ('production_version', fields.IntField(default=0)),
                ('auto_deploy', fields.BooleanField(default=True)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'task', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TaskDataset',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('task', fields.ForeignKeyField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='dataset_links', on_delete=OnDelete.CASCADE)),
                ('dataset', fields.ForeignKeyField('models.Dataset', source_field='dataset_id', db_constraint=True, to_field='id', related_name='task_links', on_delete=OnDelete.NO_ACTION)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'task_dataset', 'app': 'models', 'unique_together': (('task', 'dataset'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UserWorkspace',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='memberships', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'user_workspace', 'app': 'models', 'unique_together': (('user', 'workspace'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Variable',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('dataset', fields.ForeignKeyField('models.Dataset', source_field='dataset_id', db_constraint=True, to_field='id', related_name='variables', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=100)),
                ('type', fields.CharField(max_length=16)),
                ('required', fields.BooleanField(default=False)),
                ('description', fields.TextField(default='', unique=False)),
                ('choices', fields.TextField(null=True, unique=False)),
                ('min_value', fields.FloatField(null=True)),
                ('max_value', fields.FloatField(null=True)),
                ('step_size', fields.FloatField(null=True)),
                ('min_length', fields.IntField(null=True)),
                ('max_length', fields.IntField(null=True)),
                ('default_value', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'variable', 'app': 'models', 'unique_together': (('dataset', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='VariableValue',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('sample', fields.ForeignKeyField('models.Sample', source_field='sample_id', db_constraint=True, to_field='id', related_name='values', on_delete=OnDelete.CASCADE)),
                ('variable', fields.ForeignKeyField('models.Variable', source_field='variable_id', db_constraint=True, to_field='id', related_name='values', on_delete=OnDelete.NO_ACTION)),
                ('value', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('updated', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'variable_value', 'app': 'models', 'unique_together': (('sample', 'variable'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
