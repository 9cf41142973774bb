from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0009_exports')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RecognitionLabel',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='recognition_labels', on_delete=OnDelete.NO_ACTION)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'recognition_label', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecognitionTask',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('task', fields.OneToOneField('models.Task', source_field='task_id', db_constraint=True, to_field='id', related_name='recognition', on_delete=OnDelete.CASCADE)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='recognition_tasks', on_delete=OnDelete.NO_ACTION)),
                ('type', fields.CharField(default='multi_class', max_length=16)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'recognition_task', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecognitionTaskLabel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('task', fields.ForeignKeyField('models.RecognitionTask', source_field='task_id', db_constraint=True, to_field='id', related_name='label_links', on_delete=OnDelete.CASCADE)),
                ('label', fields.ForeignKeyField('models.RecognitionLabel', source_field='label_id', db_constraint=True, to_field='id', related_name='task_links', on_delete=OnDelete.CASCADE)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'recognition_task_label', 'app': 'models', 'unique_together': (('task', 'label'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrainingImage',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='training_images', on_delete=OnDelete.NO_ACTION)),
                ('image', fields.ForeignKeyField('models.Image', source_field='image_id', db_constraint=True, to_field='id', related_name='training_images', on_delete=OnDelete.NO_ACTION)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'training_image', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrainingImageLabel',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('image', fields.ForeignKeyField('models.TrainingImage', source_field='image_id', db_constraint=True, to_field='id', related_name='label_links', on_delete=OnDelete.CASCADE)),
                ('label', fields.ForeignKeyField('models.RecognitionLabel', source_field='label_id', db_constraint=True, to_field='id', related_name='image_links', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'training_image_label', 'app': 'models', 'unique_together': (('image', 'label'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
