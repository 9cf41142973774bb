from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_training')]

    initial = False

    operations = [
        ops.CreateModel(
            name='JobLease',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=32)),
                ('job_id', fields.CharField(max_length=64)),
                ('group_key', fields.CharField(null=True, max_length=200)),
                ('active', fields.BooleanField(default=True, db_index=True)),
                ('owner', fields.CharField(null=True, max_length=200)),
                ('expires', fields.FloatField(null=True)),
                ('attempts', fields.IntField(default=0)),
                ('cancel', fields.BooleanField(default=False)),
                ('handle', fields.CharField(null=True, max_length=200)),
                ('cursor', fields.IntField(default=0)),
                ('created', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'job_lease', 'app': 'models', 'unique_together': (('kind', 'job_id'), ('kind', 'group_key')), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
